// Package docs holds the project's documentation; its test checks the links in it.
package docs

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

var (
	inlineLink = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	refLink    = regexp.MustCompile(`^\s*\[[^\]]+\]:\s*(\S+)`)
	scheme     = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
	codeSpan   = regexp.MustCompile("`[^`]*`")
	mdPath     = regexp.MustCompile("`([^`\\s]+\\.md)`")
)

// markdown is a file's links, the Markdown files its code spans name (`docs/agent.md`), and the
// anchors of its headings, outside fenced code blocks.
type markdown struct {
	links   []string
	named   []string
	anchors map[string]bool
}

func readMarkdown(t *testing.T, path string) markdown {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	md := markdown{anchors: map[string]bool{}}
	seen := map[string]int{}
	fenced := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		if h, ok := strings.CutPrefix(line, "#"); ok {
			a := slug(strings.TrimLeft(h, "#"))
			if n := seen[a]; n > 0 {
				md.anchors[a+"-"+strconv.Itoa(n)] = true
			} else {
				md.anchors[a] = true
			}
			seen[a]++
		}
		for _, m := range mdPath.FindAllStringSubmatch(line, -1) {
			md.named = append(md.named, m[1])
		}
		text := codeSpan.ReplaceAllString(line, "")
		for _, m := range inlineLink.FindAllStringSubmatch(text, -1) {
			md.links = append(md.links, m[1])
		}
		if m := refLink.FindStringSubmatch(text); m != nil {
			md.links = append(md.links, m[1])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return md
}

// slug is GitHub's anchor for a heading: lower case, spaces to hyphens, punctuation dropped.
func slug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestLinks: every relative link in README.md and docs/*.md names a file inside the repository
// that exists, and every #anchor, in the same file or another Markdown file, names a heading.
func TestLinks(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(root, "README.md"))
	parsed := map[string]markdown{}
	get := func(path string) markdown {
		md, ok := parsed[path]
		if !ok {
			md = readMarkdown(t, path)
			parsed[path] = md
		}
		return md
	}
	checked := 0
	for _, file := range files {
		rel, _ := filepath.Rel(root, file)
		for _, link := range get(file).links {
			if scheme.MatchString(link) {
				continue // http(s), mailto: outside the repository by design
			}
			checked++
			target, anchor, _ := strings.Cut(link, "#")
			path := file
			if target != "" {
				path = filepath.Join(filepath.Dir(file), filepath.FromSlash(target))
				if r, err := filepath.Rel(root, path); err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
					t.Errorf("%s: link %s leaves the repository", rel, link)
					continue
				}
				if _, err := os.Stat(path); err != nil {
					t.Errorf("%s: link %s: %v", rel, link, err)
					continue
				}
			}
			if anchor != "" && strings.HasSuffix(path, ".md") && !get(path).anchors[anchor] {
				t.Errorf("%s: link %s: no heading with anchor #%s", rel, link, anchor)
			}
		}
		// A Markdown file named in the text is one of the repository's, from its root or
		// from the naming file's directory: the documentation stands alone.
		for _, name := range get(file).named {
			_, errRoot := os.Stat(filepath.Join(root, filepath.FromSlash(name)))
			_, errHere := os.Stat(filepath.Join(filepath.Dir(file), filepath.FromSlash(name)))
			if filepath.IsAbs(name) || strings.HasPrefix(name, "..") || errRoot != nil && errHere != nil {
				t.Errorf("%s: names %s, which is not a file of the repository", rel, name)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no relative link found: the scanner is broken")
	}
}

// TestLinkScanner: the scanner finds what it must, so TestLinks cannot pass by finding nothing.
func TestLinkScanner(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.md")
	doc := "# 6. Key binding\n## The `local` API, for apps\n[a](b.md#6-key-binding) `[not](c.md)` see `f/g.md`\n```\n[no](d.md)\n```\n[ref]: ../e.md\n"
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	md := readMarkdown(t, p)
	if strings.Join(md.links, " ") != "b.md#6-key-binding ../e.md" || strings.Join(md.named, " ") != "f/g.md" || !md.anchors["6-key-binding"] || !md.anchors["the-local-api-for-apps"] {
		t.Errorf("links %q, anchors %v", md.links, md.anchors)
	}
}
