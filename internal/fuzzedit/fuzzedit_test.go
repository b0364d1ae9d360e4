package fuzzedit

import "testing"

// TestApply pins the edit-script format the seed corpora are written in.
func TestApply(t *testing.T) {
	base := []byte("abcdef")
	for _, c := range []struct {
		script []byte
		want   string
	}{
		{nil, "abcdef"},
		{[]byte{Overwrite, 0, 1, 2, 'X', 'Y'}, "aXYdef"},
		{[]byte{Overwrite, 0, 5, 3, 'X', 'Y', 'Z'}, "abcdeXYZ"},
		{[]byte{Insert, 0, 0, 1, 0xd2}, "\xd2abcdef"},
		{[]byte{Insert, 0, 7, 1, 'X'}, "Xabcdef"}, // offset 7 mod 7
		{[]byte{Delete, 0, 2, 0, 2}, "abef"},
		{[]byte{Delete, 0, 6, 0, 2}, "abcdef"},
		{[]byte{Copy, 0, 6, 0, 0, 0, 3}, "abcdefabc"},
		{[]byte{Delete | 4, 0, 0, 0, 1, Insert, 0, 0, 1, 'z'}, "zbcdef"},
		{[]byte{Delete, 0, 0}, "abcdef"},                                                  // cut short
		{[]byte{Insert, 0, 0, 4, 'w', 'x', 'y', 'z', Insert, 0, 0, 1, 'v'}, "wxyzabcdef"}, // longer than maxLen 8: stops
	} {
		if got := string(Apply(base, c.script, 8)); got != c.want {
			t.Errorf("Apply(%x) = %q, want %q", c.script, got, c.want)
		}
	}
	if string(base) != "abcdef" {
		t.Fatal("Apply changed its base")
	}
}

// FuzzRun drives Run itself: every script applies without panicking, leaves its base alone, and
// grows an input past maxLen by at most one operation (an insert of at most 255 bytes or a copy of
// at most the input).
func FuzzRun(f *testing.F) {
	bases := [][]byte{[]byte("abcdef"), {}, make([]byte, 300)}
	const maxLen = 64
	Run(f, bases, maxLen, func(t *testing.T, data []byte) {
		if len(data) > 2*maxLen+255 {
			t.Fatalf("%d bytes from bases of at most 300 and maxLen %d", len(data), maxLen)
		}
		if string(bases[0]) != "abcdef" || len(bases[1]) != 0 || string(bases[2]) != string(make([]byte, 300)) {
			t.Fatal("a base changed")
		}
	})
}
