package eif

import "testing"

// TestBuildRecordsKernelVersion: Build records the release the kernel section declares as the
// metadata's KernelVersion when the caller gave none (or the placeholder "Unknown"), and keeps a
// version the caller gave. Parse reads back what was recorded.
func TestBuildRecordsKernelVersion(t *testing.T) {
	for _, c := range []struct {
		name, given string
		kernel      []byte
		want        string
	}{
		{"none given", "", bzImage(defaultBzImage(oldKernelVersion)), oldRelease},
		{"placeholder", UnknownKernelVersion, bzImage(defaultBzImage(newKernelVersion)), newRelease},
		{"arm64", UnknownKernelVersion, arm64Image(8192, map[int]string{0x1000: arm64Banner(newRelease)}), newRelease},
		{"given", "6.6-custom", bzImage(defaultBzImage(oldKernelVersion)), "6.6-custom"},
		{"no release in the kernel", UnknownKernelVersion, []byte("not a kernel"), UnknownKernelVersion},
	} {
		in := spec{kernel: c.kernel, ramdisks: [][]byte{[]byte("init"), []byte("app")}}.input()
		in.Arm64 = c.name == "arm64"
		in.Metadata.BuildMetadata.KernelVersion = c.given
		b, built := build(t, in)
		if got := built.Metadata.BuildMetadata.KernelVersion; got != c.want {
			t.Errorf("%s: Build says KernelVersion %q, want %q", c.name, got, c.want)
		}
		img, err := parseBytes(b)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := img.Metadata.BuildMetadata.KernelVersion; got != c.want {
			t.Errorf("%s: the image records KernelVersion %q, want %q", c.name, got, c.want)
		}
	}
}
