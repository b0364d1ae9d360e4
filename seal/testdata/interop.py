#!/usr/bin/env python3
"""Seals to attestd keys with python3-cryptography, independently of Go (used by seal's tests).

  interop.py rsa SPKI_HEX sha256|sha1 PLAINTEXT_HEX     -> RSAES-OAEP ciphertext, hex
  interop.py hpke B_HEX PKR_HEX AAD_HEX < PLAINTEXT_HEX -> attestd-seal-v1 envelope, hex
                                                           (DHKEM(X25519), HKDF-SHA256, AES-256-GCM)
  interop.py rfc9180                                    -> checks this HPKE code against RFC 9180's
                                                           vector (KEM 0x0020, KDF 0x0001, AEAD 0x0002)
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


def main(argv):
    if argv[1] == "rsa":
        pub = serialization.load_der_public_key(bytes.fromhex(argv[2]))
        h = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}[argv[3]]()
        pad = padding.OAEP(mgf=padding.MGF1(algorithm=h), algorithm=h, label=None)
        print(pub.encrypt(bytes.fromhex(argv[4]), pad).hex())
    elif argv[1] == "hpke":
        b, pkr, aad = (bytes.fromhex(a) for a in argv[2:5])
        pt = bytes.fromhex(sys.stdin.read().strip())
        tag = b"attestd-seal-v1"
        enc, ct = seal_base(pkr, tag + b, aad, pt, x25519.X25519PrivateKey.generate())
        print((tag + struct.pack(">HH", KDF, AEAD) + b + struct.pack(">H", len(aad)) + aad + enc + ct).hex())
    elif argv[1] == "rfc9180":
        v = bytes.fromhex
        enc, ct = seal_base(v("430f4b9859665145a6b1ba274024487bd66f03a2dd577d7753c68d7d7d00c00c"),
                            v("4f6465206f6e2061204772656369616e2055726e"), b"Count-0",
                            b"Beauty is truth, truth beauty",
                            derive_x25519(v("2cd7c601cefb3d42a62b04b7a9041494c06c7843818e0ce28a8f704ae7ab20f9")))
        assert enc.hex() == "6c93e09869df3402d7bf231bf540fadd35cd56be14f97178f0954db94b7fc256", enc.hex()
        assert ct.hex() == ("e5d84cd531cfb583096e7cfa9641bd3079cf3a91cda813c52deb5f512be99319"
                            "80a41de125a925cdad859d5b7a"), ct.hex()
        print("ok")
    else:
        sys.exit("unknown mode " + argv[1])


if __name__ == "__main__":
    main(sys.argv)
