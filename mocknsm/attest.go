package mocknsm

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"sync"
	"time"

	"github.com/attestd/attestd/internal/strictcbor"
	"github.com/attestd/attestd/nsm"
	"github.com/fxamacker/cbor/v2"
)

// signer holds the CA chain and the current leaf, with their encoded document fields cached: an attestation
// costs one ECDSA signature plus the encoding of the payload.
type signer struct {
	mu               sync.Mutex
	cas              [numLevels]*authority
	moduleID, region string
	leafKey          *ecdsa.PrivateKey
	leaf             *x509.Certificate
	certificate      cbor.RawMessage // bstr(leaf DER)
	cabundle         cbor.RawMessage // [root, regional, zonal, instance] as bstrs
}

// current returns the leaf key and the encoded certificate and cabundle fields valid at now, first re-issuing
// any CA certificate with less than caRenewBefore left (from its parent's key; its own key is kept, so the
// certificates below it stay valid) and the leaf when less than leafRenewBefore is left.
func (s *signer) current(now time.Time) (*ecdsa.PrivateKey, cbor.RawMessage, cbor.RawMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	renewed := s.cabundle == nil
	for level, a := range s.cas {
		if !needsRenewal(a.cert, now, caRenewBefore) {
			continue
		}
		var parent *authority
		if level > levelRoot {
			parent = s.cas[level-1]
		}
		cert, err := issueCA(level, a.cert, a.key, parent, now)
		if err != nil {
			return nil, nil, nil, err
		}
		s.cas[level] = &authority{key: a.key, cert: cert}
		renewed = true
	}
	if renewed {
		ders := make([][]byte, numLevels)
		for i, a := range s.cas {
			ders[i] = a.cert.Raw
		}
		s.cabundle = encode(ders)
	}
	if s.leaf == nil || needsRenewal(s.leaf, now, leafRenewBefore) {
		key, err := newKey()
		if err != nil {
			return nil, nil, nil, err
		}
		leaf, err := issueLeaf(s.cas[levelInstance], key, s.moduleID, s.region, now)
		if err != nil {
			return nil, nil, nil, err
		}
		s.leafKey, s.leaf, s.certificate = key, leaf, encode(leaf.Raw)
	}
	return s.leafKey, s.certificate, s.cabundle, nil
}

// payload is the attestation document payload. Its fields are in AWS's wire order (nitro-specs §3.3), which
// fxamacker's default mode keeps; nil optional fields encode as null (0xf6), empty ones as 0x40.
type payload struct {
	ModuleID    string          `cbor:"module_id"`
	Digest      string          `cbor:"digest"`
	Timestamp   uint64          `cbor:"timestamp"`
	PCRs        cbor.RawMessage `cbor:"pcrs"`
	Certificate cbor.RawMessage `cbor:"certificate"`
	CABundle    cbor.RawMessage `cbor:"cabundle"`
	PublicKey   []byte          `cbor:"public_key"`
	UserData    []byte          `cbor:"user_data"`
	Nonce       []byte          `cbor:"nonce"`
}

// protectedES384 is the COSE protected header of every document: {1: -35}, ES384.
var protectedES384 = []byte{0xa1, 0x01, 0x38, 0x22}

// pcrEncMode sorts map keys, so the pcrs map comes out in ascending index order like the NSM's BTreeMap.
var pcrEncMode = func() cbor.EncMode {
	em, err := cbor.EncOptions{Sort: cbor.SortBytewiseLexical}.EncMode()
	if err != nil {
		panic(err)
	}
	return em
}()

func (n *NSM) attest(r decoded) []byte {
	key, p, err := n.payload(r, n.now())
	if err != nil {
		return encodeError(nsm.InternalError)
	}
	digest := sigStructureDigest(p)
	rr, ss, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		return encodeError(nsm.InternalError)
	}
	var sig [96]byte
	rr.FillBytes(sig[:48])
	ss.FillBytes(sig[48:])
	return attestationResponse(p, sig[:])
}

// sigStructureDigest is the SHA-384 of COSE's Sig_structure for Signature1 (RFC 8152 §4.4),
// ["Signature1", protected, h”, payload], hashed as it is written rather than built: it would be
// a copy of the payload.
func sigStructureDigest(payload []byte) [48]byte {
	h := sha512.New384()
	var head []byte
	head = strictcbor.AppendHead(head, strictcbor.Array, 4)
	head = strictcbor.AppendText(head, "Signature1")
	head = strictcbor.AppendBytes(head, protectedES384)
	head = strictcbor.AppendBytes(head, nil) // external_aad
	head = strictcbor.AppendHead(head, strictcbor.Bytes, uint64(len(payload)))
	h.Write(head)
	h.Write(payload)
	var d [48]byte
	h.Sum(d[:0])
	return d
}

// attestationResponse is the NSM's answer {"Attestation": {"document": COSE_Sign1}} with the
// untagged COSE_Sign1 [protected, {}, payload, signature], written into one buffer of the exact
// size.
func attestationResponse(payload, sig []byte) []byte {
	bstrLen := func(n int) int { return strictcbor.HeadSize(uint64(n)) + n }
	docLen := 1 + bstrLen(len(protectedES384)) + 1 + bstrLen(len(payload)) + bstrLen(len(sig))
	const prefix = "\xa1\x6bAttestation\xa1\x68document"
	b := make([]byte, 0, len(prefix)+strictcbor.HeadSize(uint64(docLen))+docLen)
	b = append(b, prefix...)
	b = strictcbor.AppendHead(b, strictcbor.Bytes, uint64(docLen))
	b = strictcbor.AppendHead(b, strictcbor.Array, 4)
	b = strictcbor.AppendBytes(b, protectedES384)
	b = strictcbor.AppendHead(b, strictcbor.Map, 0) // unprotected
	b = strictcbor.AppendBytes(b, payload)
	return strictcbor.AppendBytes(b, sig)
}

// payload encodes the document payload for r at now and returns it with the key that must sign it.
func (n *NSM) payload(r decoded, now time.Time) (*ecdsa.PrivateKey, []byte, error) {
	n.mu.Lock()
	pcrs := make(map[uint16][]byte, NumPCRs)
	for i := range uint16(NumPCRs) {
		if n.locked&(1<<i) != 0 {
			pcrs[i] = n.pcrs[i][:]
		}
	}
	pcrField, err := pcrEncMode.Marshal(pcrs) // copies the values while n.mu is held
	n.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	key, cert, cabundle, err := n.signer.current(now)
	if err != nil {
		return nil, nil, err
	}
	return key, encode(payload{
		ModuleID:    n.st.ModuleID,
		Digest:      "SHA384",
		Timestamp:   uint64(now.UnixMilli()),
		PCRs:        pcrField,
		Certificate: cert,
		CABundle:    cabundle,
		PublicKey:   r.publicKey,
		UserData:    r.userData,
		Nonce:       r.nonce,
	}), nil
}
