// Package version is the one version of every attestd binary (attestd, attest, nsm-mock).
//
// It is a constant in the source, not a linker stamp, so that a build is reproducible from the tree
// alone (scripts/repro-check.sh) and every binary built from one commit reports the same version.
// Bump it when tagging a release.
package version

// Version is the project's version, as the binaries' --version prints it.
const Version = "0.4.0-dev"
