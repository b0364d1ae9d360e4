package kmsfake

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"maps"
	"slices"
)

// blobMagic starts every ciphertext blob of this server (the format is in the package doc).
const blobMagic = "kf1"

var errBlob = errors.New("kmsfake: not a ciphertext blob of this server")

// sealBlob encrypts plaintext under keyID's material, bound to the encryption context.
func sealBlob(keyID string, material []byte, plaintext []byte, ec map[string]string) ([]byte, error) {
	head := append([]byte(blobMagic), byte(len(keyID)))
	head = append(head, keyID...)
	aead, err := newGCM(material)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := append(bytes.Clone(head), nonce...)
	return aead.Seal(out, nonce, plaintext, blobAAD(head, ec)), nil
}

// blobKeyID returns the key a blob names, without authenticating it.
func blobKeyID(blob []byte) (string, error) {
	if len(blob) < len(blobMagic)+1 || string(blob[:len(blobMagic)]) != blobMagic {
		return "", errBlob
	}
	n := int(blob[len(blobMagic)])
	if n == 0 || len(blob) < len(blobMagic)+1+n {
		return "", errBlob
	}
	return string(blob[len(blobMagic)+1 : len(blobMagic)+1+n]), nil
}

// openBlob authenticates and decrypts a blob made by sealBlob with the same material and context.
func openBlob(material, blob []byte, ec map[string]string) ([]byte, error) {
	keyID, err := blobKeyID(blob)
	if err != nil {
		return nil, err
	}
	headLen := len(blobMagic) + 1 + len(keyID)
	aead, err := newGCM(material)
	if err != nil {
		return nil, err
	}
	if len(blob) < headLen+aead.NonceSize()+aead.Overhead() {
		return nil, errBlob
	}
	nonce := blob[headLen : headLen+aead.NonceSize()]
	plaintext, err := aead.Open(nil, nonce, blob[headLen+aead.NonceSize():], blobAAD(blob[:headLen], ec))
	if err != nil {
		return nil, errBlob
	}
	return plaintext, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// blobAAD is the blob's head followed by the encryption context, sorted by key, each key and value as a
// 2-byte length and its bytes (request validation bounds them far below 64 KiB).
func blobAAD(head []byte, ec map[string]string) []byte {
	aad := bytes.Clone(head)
	for _, k := range slices.Sorted(maps.Keys(ec)) {
		aad = binary.BigEndian.AppendUint16(aad, uint16(len(k)))
		aad = append(aad, k...)
		aad = binary.BigEndian.AppendUint16(aad, uint16(len(ec[k])))
		aad = append(aad, ec[k]...)
	}
	return aad
}
