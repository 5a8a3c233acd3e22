"""Opens a sealed box with PyNaCl (libsodium's crypto_box_seal_open), the reference
implementation GitHub documents for Actions secrets. Reads JSON {secret_key, sealed}
(base64) on stdin and prints the plaintext, or exits 1 if it does not open."""
import base64
import json
import sys

from nacl.public import PrivateKey, SealedBox

req = json.load(sys.stdin)
box = SealedBox(PrivateKey(base64.b64decode(req["secret_key"])))
try:
    sys.stdout.write(box.decrypt(base64.b64decode(req["sealed"])).decode())
except Exception as e:  # noqa: BLE001 - any failure means "does not open"
    sys.stderr.write(f"does not open: {e}\n")
    sys.exit(1)
