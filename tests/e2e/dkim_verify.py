"""Verifies the DKIM signature of one message with dkimpy, an implementation
independent of the host's, fetching the public key from the test's DNS server.

Usage: python3 dkim_verify.py MESSAGE_FILE DNS_HOST:PORT
Prints `pass` (exit 0) or `fail: <why>` (exit 1).
"""

import sys

import dkim
import dns.resolver


def main():
    path, server = sys.argv[1], sys.argv[2]
    host, port = server.rsplit(":", 1)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = int(port)

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        try:
            answer = resolver.resolve(name.rstrip("."), "TXT", lifetime=timeout)
        except Exception:  # no such record: dkimpy treats None as missing
            return None
        return b"".join(b"".join(record.strings) for record in answer[:1])

    with open(path, "rb") as f:
        message = f.read()
    try:
        ok = dkim.verify(message, dnsfunc=dnsfunc)
    except dkim.DKIMException as err:
        print(f"fail: {err}")
        sys.exit(1)
    if ok:
        print("pass")
        sys.exit(0)
    print("fail: the signature does not verify")
    sys.exit(1)


main()
