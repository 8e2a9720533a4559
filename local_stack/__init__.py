"""Docker-free local stack: runs the SAM template's real handlers against moto.

``python -m local_stack dev`` reads template.yaml, starts moto in its own process, creates the
template's tables, streams, buckets, state machines and Cognito pool, runs each function in pooled worker
subprocesses and serves the HTTP and WebSocket APIs with API Gateway's events, authorizers, CORS
and limits. It imports none of the product's code: it runs it.

Where to change what (one module each):
  cli.py          the commands (dev, token, invoke) and their flags
  stack.py        what starts, in which order, and stack.json (what tests and tools read)
  template.py     reading the template: parameters, conditions, intrinsics, and the SAM transform's
                  output for functions, HTTP APIs, stream mappings
  aws.py          moto as a child process, and provisioning the template's resources in it
  moto_server.py  moto's server process and its patches (for one moto version)
  aws_proxy.py    the functions' AWS endpoint: IAM roles (iam.py) and transaction conflicts (conflicts.py)
  lambdas.py      the Lambda runtime (worker pools); worker.py is one execution environment
  http_api.py     the HTTP API: routing, payload 2.0 events, CORS; jwt_authorizer.py its JWT authorizer
  ws_api.py       the WebSocket API and its Management API
  streams.py      DynamoDB stream event source mappings
  limits.py       API Gateway's request limits; serving.py what every server shares
  console.py      the speaker and listener pages; launcher.py starts a stack for tests and benchmarks
"""
