"""Counts the primes below a limit: an example `command` pipeline.

Run by orch as argv (no shell): python3 primes.py --limit N --out primes.txt
Writes the primes to the output file and a summary to stdout.
"""
import argparse
import json
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, required=True)
    parser.add_argument("--out", default="primes.txt")
    args = parser.parse_args()
    if args.limit < 2:
        print("limit must be at least 2", file=sys.stderr)
        return 2
    sieve = bytearray([1]) * args.limit
    sieve[0:2] = b"\x00\x00"
    for p in range(2, int(args.limit ** 0.5) + 1):
        if sieve[p]:
            sieve[p * p :: p] = bytearray(len(sieve[p * p :: p]))
    primes = [i for i, flag in enumerate(sieve) if flag]
    with open(args.out, "w") as f:
        f.write("\n".join(map(str, primes)) + "\n")
    print(json.dumps({"limit": args.limit, "count": len(primes)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
