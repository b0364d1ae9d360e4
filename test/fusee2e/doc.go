// Package fusee2e holds the end-to-end tests of the mock NSM device: the
// software NSM (mocknsm) served through the FUSE file (mocknsm/fusedev) from a
// helper process, driven by the real hf/nsm session, by package nsm, by raw
// ioctls and by scripts/nsm-run.sh around an unmodified program. They need
// root and /dev/fuse; they skip elsewhere and fail under CI=true.
package fusee2e
