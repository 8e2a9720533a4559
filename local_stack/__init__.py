"""Docker-free local stack: runs the SAM template's real handlers against moto.

``python -m local_stack dev`` reads template.yaml, starts moto in its own
process, creates the template's tables and Cognito pool, runs each function in
pooled worker subprocesses and serves the HTTP API with API Gateway's event
format, JWT authorizer and CORS behaviour. See local_stack.cli for commands.
"""
