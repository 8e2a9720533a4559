"""Human-readable session IDs: adjective-noun-number, e.g. "golden-eagle-427".

The ID space is len(ADJECTIVES) * len(NOUNS) * 900, about 25 million IDs
(see docs/architecture.md for the collision odds). Uniqueness is enforced by
the conditional write in data/sessions.py, not here; this module only draws
candidates.
"""

from __future__ import annotations

import re
import secrets

ADJECTIVES: tuple[str, ...] = tuple("""
able agile airy amber ample aqua arctic astral autumn azure balmy bold brave breezy bright brisk bronze
calm candid careful cedar cheerful civic clear clever cloudy coastal cobalt coral cosmic cozy crimson crisp
curious dapper daring dawn deep dewy eager early earnest easy elder electric emerald epic even fair famous
fancy fast fearless festive fine firm flying fresh friendly frosty gentle giant gifted glad gleaming glossy
golden graceful grand green happy hardy harmonic hazel hearty helpful honest humble icy ideal indigo ivory
jade jolly joyful keen kind lavender lilac lively loyal lucid lucky lunar magic majestic maple marble mellow
merry mighty mint misty modern noble nimble northern oaken ocean olive opal orange patient peaceful pearl
plucky polar polite proud quick quiet radiant rapid rare ready regal rosy royal ruby rustic sandy sapphire
scarlet serene sharp shiny silent silver simple sincere sleek smart smooth snowy solar sonic sparkling
speedy spring stable steady stellar sturdy sunny superb swift tawny teal tidy tranquil true trusty twilight
upbeat urban valiant velvet verdant vivid warm wavy wild windy wise witty zesty
""".split())

NOUNS: tuple[str, ...] = tuple("""
acorn albatross alpaca anchor antelope apple aspen aurora badger banjo basil beacon bear beaver bison
blossom bluebird breeze brook buffalo butterfly cactus canary canyon cardinal caribou cedar cheetah
cherry clover cloud comet compass condor coral cougar coyote crane cricket crystal cypress dolphin dove
dragonfly dune eagle echo elk ember falcon fern finch firefly fjord flamingo forest fox galaxy gazelle
gecko geyser glacier harbor hawk hazel heron hill horizon hummingbird ibis iris island jaguar jasmine
kestrel kite koala lagoon lake lantern lark lemur leopard lily lion llama lotus lynx magpie maple marlin
meadow meteor mink moon moose nebula nightingale oak oasis ocelot orca orchid osprey otter owl panda
panther parrot peak pebble pelican penguin pine planet plover pony poppy prairie puffin quail quartz
rabbit raven reef ridge river robin rocket sage salmon sequoia sparrow spruce squirrel star stork summit
swallow swan thunder tiger toucan tulip tundra turtle valley violet voyager walrus willow wolf wren yak
zebra zephyr
""".split())

NUMBER_MIN, NUMBER_MAX = 100, 999

# Combinations that read badly even though every word is harmless alone.
BLOCKED_NUMBERS = frozenset({666, 420, 911, 187})
BLOCKED_PAIRS = frozenset({("icy", "river"), ("deep", "reef")})

SESSION_ID_PATTERN = re.compile(r"^[a-z]{2,20}-[a-z]{2,20}-[0-9]{3}$")

ID_SPACE = len(ADJECTIVES) * len(NOUNS) * (NUMBER_MAX - NUMBER_MIN + 1)


def is_valid_session_id(value: object) -> bool:
    return isinstance(value, str) and SESSION_ID_PATTERN.fullmatch(value) is not None


def is_blocked(adjective: str, noun: str, number: int) -> bool:
    return number in BLOCKED_NUMBERS or (adjective, noun) in BLOCKED_PAIRS


def new_session_id() -> str:
    """Draws a random, non-blocked candidate ID (unique only once written)."""
    while True:
        adjective = secrets.choice(ADJECTIVES)
        noun = secrets.choice(NOUNS)
        number = NUMBER_MIN + secrets.randbelow(NUMBER_MAX - NUMBER_MIN + 1)
        if not is_blocked(adjective, noun, number):
            return f"{adjective}-{noun}-{number}"
