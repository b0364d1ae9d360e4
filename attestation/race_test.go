//go:build race

package attestation

// raceEnabled: the race detector makes P-384 arithmetic several times slower,
// so the heaviest randomised tests draw fewer cases under it.
const raceEnabled = true
