#!/usr/bin/env python3
"""Seals to attestd keys with python3-cryptography, independently of Go (used by seal's tests).

Reads one job a line on stdin (hex arguments; "-" for an empty one) and prints one line for each:

  rsa SPKI sha256|sha1 PLAINTEXT   -> the RSAES-OAEP ciphertext (MGF1 = OAEP hash, empty label)
  hpke B PKR AAD PLAINTEXT         -> an attestd-seal-v1 envelope (DHKEM(X25519), HKDF-SHA256,
                                      AES-256-GCM, a fresh ephemeral key)
  rfc9180                          -> enc and ct of RFC 9180's vector (KEM 0x0020, KDF 0x0001,
                                      AEAD 0x0002, sequence 0), sealed from its ikmE by this code
"""
import hashlib
import hmac
import struct
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEM, KDF, AEAD = 0x0020, 0x0001, 0x0002
SUITE_KEM = b"KEM" + struct.pack(">H", KEM)
SUITE = b"HPKE" + struct.pack(">HHH", KEM, KDF, AEAD)


def extract(salt, ikm):
    return hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()


def expand(prk, info, n):
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out, i = out + t, i + 1
    return out[:n]


def labeled_extract(suite, salt, label, ikm):
    return extract(salt, b"HPKE-v1" + suite + label + ikm)


def labeled_expand(suite, prk, label, info, n):
    return expand(prk, struct.pack(">H", n) + b"HPKE-v1" + suite + label + info, n)


def raw(pub):
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def derive_x25519(ikm):
    prk = labeled_extract(SUITE_KEM, b"", b"dkp_prk", ikm)
    return x25519.X25519PrivateKey.from_private_bytes(labeled_expand(SUITE_KEM, prk, b"sk", b"", 32))


def seal_base(pkr, info, aad, pt, ske):
    enc = raw(ske.public_key())
    dh = ske.exchange(x25519.X25519PublicKey.from_public_bytes(pkr))
    eae = labeled_extract(SUITE_KEM, b"", b"eae_prk", dh)
    shared = labeled_expand(SUITE_KEM, eae, b"shared_secret", enc + pkr, 32)
    ctx = b"\x00" + labeled_extract(SUITE, b"", b"psk_id_hash", b"") + labeled_extract(SUITE, b"", b"info_hash", info)
    secret = labeled_extract(SUITE, shared, b"secret", b"")
    key = labeled_expand(SUITE, secret, b"key", ctx, 32)
    nonce = labeled_expand(SUITE, secret, b"base_nonce", ctx, 12)
    return enc, AESGCM(key).encrypt(nonce, pt, aad)


def job(args):
    if args[0] == "rsa":
        pub = serialization.load_der_public_key(bytes.fromhex(args[1]))
        h = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}[args[2]]()
        pad = padding.OAEP(mgf=padding.MGF1(algorithm=h), algorithm=h, label=None)
        return pub.encrypt(bytes.fromhex(args[3].strip("-")), pad).hex()
    if args[0] == "hpke":
        b, pkr, aad, pt = (bytes.fromhex(a.strip("-")) for a in args[1:5])
        tag = b"attestd-seal-v1"
        enc, ct = seal_base(pkr, tag + b, aad, pt, x25519.X25519PrivateKey.generate())
        return (tag + struct.pack(">HH", KDF, AEAD) + b + struct.pack(">H", len(aad)) + aad + enc + ct).hex()
    if args[0] == "rfc9180":
        v = bytes.fromhex
        enc, ct = seal_base(v("430f4b9859665145a6b1ba274024487bd66f03a2dd577d7753c68d7d7d00c00c"),
                            v("4f6465206f6e2061204772656369616e2055726e"), b"Count-0",
                            b"Beauty is truth, truth beauty",
                            derive_x25519(v("2cd7c601cefb3d42a62b04b7a9041494c06c7843818e0ce28a8f704ae7ab20f9")))
        return enc.hex() + " " + ct.hex()
    raise SystemExit("unknown job " + args[0])


def main():
    for line in sys.stdin:
        print(job(line.split()), flush=True)


if __name__ == "__main__":
    main()
