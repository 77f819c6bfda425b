#!/usr/bin/env python3
"""Prints the current RFC 6238 one-time code (SHA-1, 30 s, 6 digits) for a base32 secret.

The demo uses it in place of an authenticator app: `scripts/totp.py SECRET`.
With --next it first waits for the next 30-second step, since a code that was
already accepted is never accepted twice.
"""
import base64, hashlib, hmac, struct, sys, time

def code(secret: str, step: int) -> str:
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % 1000000)

def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--next"]
    if len(args) != 1:
        sys.exit("usage: totp.py [--next] BASE32SECRET")
    if "--next" in sys.argv:
        time.sleep(30 - time.time() % 30 + 0.5)
    print(code(args[0], int(time.time() // 30)))

if __name__ == "__main__":
    main()
