package verifybench

import (
	"encoding/asn1"
	"math/big"
)

func asn1Sig(r, s *big.Int) ([]byte, error) {
	return asn1.Marshal(struct{ R, S *big.Int }{r, s})
}
