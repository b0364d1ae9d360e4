#!/usr/bin/python3
"""A secret store in the style of seed 002 (Richard Fan's nitro-enclave-python-demo
SecretStore), as a relying party of attestd.

It releases a secret only to an enclave whose attestation document it verified, sealed to
the RSA key that document carries, with pycryptodome's PKCS1_OAEP defaults (SHA-1, MGF1-SHA-1,
empty label): what the SecretStore does, so that an enclave opens it with attestd's local
`open` method and `oaep_hash: sha1`.

    secretstore.py --addr unix:///run/attestd.sock --root root.pem --pcr 0=HEX [--pcr N=HEX ...]
                   [--max-age SECONDS] < secret > ciphertext.b64
    secretstore.py --doc DOC --nonce HEX --root root.pem --pcr 0=HEX ... < secret

With --addr it asks attestd's parent API (vsock://CID:PORT, unix:///PATH or tcp://HOST:PORT)
for a document binding the enclave's `rsa` key and a fresh 32-byte random nonce. With --doc it
checks a document the enclave handed over (raw COSE_Sign1 bytes) against the nonce the store
gave it. Either way, in order:

1. decode the document: COSE_Sign1 (untagged or tag 18), protected header {1: -35} (ES384),
   the payload's fields and types, nothing after the CBOR item;
2. match every --pcr against the document's PCRs (at least one is required);
3. validate the certificate chain from the leaf through cabundle[1:] to the root given with
   --root: cabundle[0] must be that root, byte for byte, and the cabundle is never a trust
   anchor (each link's ECDSA signature, issuer name, CA flag and validity are checked here);
4. check the COSE ES384 signature (Sig_structure "Signature1") with the leaf's P-384 key;
5. check the document's nonce is the one sent (and its timestamp is at most --max-age old);
6. PKCS1_OAEP.new(RSA.import_key(doc["public_key"])).encrypt(secret), printed as base64.

Exit status: 0 sealed, 1 rejected or failed, 2 usage error. Uses only Debian's
python3-cbor2, python3-cryptography and python3-pycryptodome.
"""

import argparse
import base64
import datetime
import hmac
import io
import os
import socket
import struct
import sys
import time

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

try:  # Debian's python3-pycryptodome installs the Cryptodome namespace
    from Cryptodome.Cipher import PKCS1_OAEP
    from Cryptodome.PublicKey import RSA
except ImportError:  # pip's pycryptodome installs Crypto
    from Crypto.Cipher import PKCS1_OAEP
    from Crypto.PublicKey import RSA

NONCE_SIZE = 32
MAX_DOCUMENT = 16 << 10
MAX_FRAME = 64 << 10
MAX_SECRET = 214  # RSA-2048 OAEP with SHA-1: k - 2*hLen - 2


class Rejected(Exception):
    """The document or the agent's answer was read and refused."""


def cbor_item(data, what):
    """Decodes exactly one CBOR item: trailing bytes are an error."""
    fp = io.BytesIO(data)
    try:
        item = cbor2.CBORDecoder(fp).decode()
    except Exception as e:  # cbor2 raises several types
        raise Rejected(f"{what}: invalid CBOR: {e}")
    if fp.tell() != len(data):
        raise Rejected(f"{what}: {len(data) - fp.tell()} bytes after the CBOR item")
    return item


def want(value, typ, what):
    if not isinstance(value, typ) or isinstance(value, bool):
        raise Rejected(f"{what}: want {typ.__name__}, got {type(value).__name__}")
    return value


# --- attestd's parent API (docs/protocol.md): length-prefixed CBOR frames ---

def connect(addr):
    if addr.startswith("unix://"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(addr[len("unix://"):])
    elif addr.startswith("vsock://"):
        cid, port = addr[len("vsock://"):].split(":")
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        s.connect((int(cid), int(port)))
    elif addr.startswith("tcp://"):
        host, port = addr[len("tcp://"):].rsplit(":", 1)
        s = socket.create_connection((host, int(port)))
    else:
        raise ValueError(f"address {addr!r}: want vsock://CID:PORT, unix:///PATH or tcp://HOST:PORT")
    s.settimeout(10)
    return s


def recv_exactly(s, n):
    b = bytearray()
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            raise Rejected("agent closed the connection")
        b += chunk
    return bytes(b)


def attest(addr, nonce):
    """Asks attestd for a document binding its rsa key and nonce; returns (document, key)."""
    body = cbor2.dumps({"v": 1, "id": 1, "method": "attest", "params": {"nonce": nonce, "key": "rsa"}},
                       canonical=True)
    with connect(addr) as s:
        s.sendall(struct.pack(">I", len(body)) + body)
        (n,) = struct.unpack(">I", recv_exactly(s, 4))
        if n == 0 or n > MAX_FRAME:
            raise Rejected(f"response frame of {n} bytes")
        resp = want(cbor_item(recv_exactly(s, n), "response"), dict, "response")
    if "error" in resp:
        err = want(resp["error"], dict, "error")
        raise Rejected(f"agent: {err.get('code')}: {err.get('message')}")
    if resp.get("v") != 1 or resp.get("id") != 1 or set(resp) != {"v", "id", "result"}:
        raise Rejected("malformed response envelope")
    res = want(resp["result"], dict, "result")
    if set(res) != {"document", "public_key", "key"} or res["key"] != "rsa":
        raise Rejected("malformed attest result")
    return want(res["document"], bytes, "document"), want(res["public_key"], bytes, "public_key")


# --- the document ---

PAYLOAD_FIELDS = {
    "module_id": str, "digest": str, "timestamp": int, "pcrs": dict, "certificate": bytes,
    "cabundle": list, "public_key": (bytes, type(None)), "user_data": (bytes, type(None)),
    "nonce": (bytes, type(None)),
}


def decode(document):
    """Returns (protected, payload bytes, signature, payload map) of a COSE_Sign1 document."""
    if len(document) > MAX_DOCUMENT:
        raise Rejected(f"document is {len(document)} bytes, over {MAX_DOCUMENT}")
    msg = cbor_item(document, "document")
    if isinstance(msg, cbor2.CBORTag):
        if msg.tag != 18:
            raise Rejected(f"document: tag {msg.tag}, want 18 (COSE_Sign1)")
        msg = msg.value
    if not isinstance(msg, list) or len(msg) != 4:
        raise Rejected("document: not a COSE_Sign1 array of four")
    protected, unprotected, payload, signature = msg
    want(protected, bytes, "protected header")
    want(unprotected, dict, "unprotected header")
    want(payload, bytes, "payload")
    want(signature, bytes, "signature")
    if cbor_item(protected, "protected header") != {1: -35}:
        raise Rejected("protected header: want {1: -35} (ES384)")
    if len(signature) != 96:
        raise Rejected(f"signature: {len(signature)} bytes, want 96 (ES384 r || s)")
    doc = want(cbor_item(payload, "payload"), dict, "payload")
    if set(doc) != set(PAYLOAD_FIELDS):
        raise Rejected(f"payload: fields {sorted(map(str, doc))}")
    for name, typ in PAYLOAD_FIELDS.items():
        if not isinstance(doc[name], typ) or isinstance(doc[name], bool):
            raise Rejected(f"payload {name}: wrong type {type(doc[name]).__name__}")
    if doc["digest"] != "SHA384":
        raise Rejected(f"payload digest {doc['digest']!r}, want SHA384")
    for idx, val in doc["pcrs"].items():
        if not isinstance(idx, int) or not 0 <= idx < 32 or not isinstance(val, bytes) or len(val) != 48:
            raise Rejected(f"payload pcrs: bad entry {idx!r}")
    if not doc["cabundle"] or not all(isinstance(c, bytes) for c in doc["cabundle"]):
        raise Rejected("payload cabundle: want a non-empty array of certificates")
    return protected, payload, signature, doc


def check_pcrs(doc, policy):
    for idx, val in sorted(policy.items()):
        got = doc["pcrs"].get(idx)
        if got is None or not hmac.compare_digest(got, val):
            raise Rejected(f"PCR{idx} is {got.hex() if got else 'absent'}, want {val.hex()}")


def check_chain(doc, root_der, now):
    """Validates leaf <- cabundle[-1] <- ... <- cabundle[1] <- root; returns the leaf."""
    if doc["cabundle"][0] != root_der:
        raise Rejected("chain: cabundle[0] is not the given root")
    # The given root is the only trust anchor; cabundle[1:] are intermediates to check.
    certs = [x509.load_der_x509_certificate(root_der)]
    try:
        certs += [x509.load_der_x509_certificate(c) for c in doc["cabundle"][1:]]
        certs.append(x509.load_der_x509_certificate(doc["certificate"]))
    except ValueError as e:
        raise Rejected(f"chain: bad certificate: {e}")
    for i, cert in enumerate(certs):
        name = "root" if i == 0 else "leaf" if i == len(certs) - 1 else f"cabundle[{i}]"
        if not cert.not_valid_before <= now <= cert.not_valid_after:
            raise Rejected(f"chain: {name} is not valid at {now.isoformat()}Z")
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            bc = None
        is_ca = bc is not None and bc.ca
        if (i < len(certs) - 1) != is_ca:
            raise Rejected(f"chain: {name} CA flag is {is_ca}")
        if i == 0:
            continue
        issuer = certs[i - 1]
        if cert.issuer != issuer.subject:
            raise Rejected(f"chain: {name} is not issued by the certificate before it")
        pub = issuer.public_key()
        if not isinstance(pub, ec.EllipticCurvePublicKey):
            raise Rejected(f"chain: {name}'s issuer key is not ECDSA")
        try:
            pub.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        except InvalidSignature:
            raise Rejected(f"chain: {name}'s signature does not verify")
    return certs[-1]


def check_signature(leaf, protected, payload, signature):
    pub = leaf.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey) or pub.curve.name != "secp384r1":
        raise Rejected("signature: the leaf key is not P-384")
    sig_structure = cbor2.dumps(["Signature1", protected, b"", payload])
    r, s = int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big")
    try:
        pub.verify(utils.encode_dss_signature(r, s), sig_structure, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise Rejected("signature: COSE ES384 signature does not verify")


def verify(document, nonce, policy, root_der, max_age):
    protected, payload, signature, doc = decode(document)
    check_pcrs(doc, policy)
    now = datetime.datetime.utcnow()
    leaf = check_chain(doc, root_der, now)
    check_signature(leaf, protected, payload, signature)
    if doc["nonce"] is None or not hmac.compare_digest(doc["nonce"], nonce):
        raise Rejected("nonce: the document does not carry the nonce the store sent")
    age = time.time() - doc["timestamp"] / 1000
    if age > max_age or age < -60:
        raise Rejected(f"freshness: document timestamp is {age:.0f} s old, limit {max_age} s")
    if doc["public_key"] is None:
        raise Rejected("public_key: absent")
    return doc


def parse_pcr(v):
    idx, _, val = v.partition("=")
    try:
        i, b = int(idx), bytes.fromhex(val)
    except ValueError:
        raise argparse.ArgumentTypeError(f"want N=HEX, got {v!r}")
    if not 0 <= i < 32 or len(b) != 48:
        raise argparse.ArgumentTypeError(f"want an index 0..31 and 48 bytes, got {v!r}")
    return i, b


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--addr", help="attestd's parent API: vsock://CID:PORT, unix:///PATH or tcp://HOST:PORT")
    src.add_argument("--doc", help="a document the enclave handed over (raw COSE_Sign1 bytes)")
    ap.add_argument("--nonce", help="with --doc: the nonce (hex) the store gave the enclave")
    ap.add_argument("--root", required=True, help="the trust anchor (PEM): the AWS Nitro root, or a mock's")
    ap.add_argument("--pcr", type=parse_pcr, action="append", required=True, help="require PCR N=HEX (repeatable)")
    ap.add_argument("--max-age", type=int, default=300, help="oldest document accepted, in seconds (300)")
    args = ap.parse_args(argv)
    if args.doc and not args.nonce:
        ap.error("--doc needs --nonce: a document is fresh only for the nonce the store chose")
    if args.addr and args.nonce:
        ap.error("--nonce goes with --doc: with --addr the store sends a fresh random nonce")
    policy = dict(args.pcr)
    with open(args.root, "rb") as f:
        root_der = x509.load_pem_x509_certificate(f.read()).public_bytes(serialization.Encoding.DER)
    secret = sys.stdin.buffer.read(MAX_SECRET + 1)
    if len(secret) > MAX_SECRET:
        print(f"secretstore: the secret is over {MAX_SECRET} bytes", file=sys.stderr)
        return 1
    try:
        if args.addr:
            nonce = os.urandom(NONCE_SIZE)
            document, _ = attest(args.addr, nonce)
        else:
            nonce = bytes.fromhex(args.nonce)
            with open(args.doc, "rb") as f:
                document = f.read(MAX_DOCUMENT + 1)
        doc = verify(document, nonce, policy, root_der, args.max_age)
        # The SecretStore's step, as seed 002 has it.
        ciphertext = PKCS1_OAEP.new(RSA.import_key(doc["public_key"])).encrypt(secret)
    except (Rejected, OSError, ValueError) as e:
        print(f"secretstore: rejected: {e}", file=sys.stderr)
        return 1
    print(base64.b64encode(ciphertext).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
