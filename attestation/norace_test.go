//go:build !race

package attestation

const raceEnabled = false
