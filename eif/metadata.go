package eif

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// Metadata is the metadata section of a v4 EIF (EifIdentityInfo in nitro-cli). It is not
// measured: it describes the image but proves nothing about it.
type Metadata struct {
	ImageName     string
	ImageVersion  string
	BuildMetadata BuildMetadata
	// DockerInfo is `docker inspect` output for images nitro-cli built, JSON null otherwise.
	DockerInfo json.RawMessage
	// CustomMetadata is user-supplied JSON (eif_build --metadata), JSON null otherwise.
	CustomMetadata json.RawMessage
}

// BuildMetadata is the generated part of Metadata.
type BuildMetadata struct {
	BuildTime        string // RFC 3339
	BuildTool        string
	BuildToolVersion string
	OperatingSystem  string
	KernelVersion    string
}

// maxJSONDepth bounds nesting in metadata JSON.
const maxJSONDepth = 64

var (
	metadataKeys = []string{"ImageName", "ImageVersion", "BuildMetadata", "DockerInfo", "CustomMetadata"}
	buildKeys    = []string{"BuildTime", "BuildTool", "BuildToolVersion", "OperatingSystem", "KernelVersion"}
)

// ParseMetadata decodes a metadata section strictly: valid UTF-8, one JSON object with
// exactly the fields nitro-cli writes (names matched exactly), no duplicate keys anywhere,
// nesting at most 64 deep, nothing after the object.
func ParseMetadata(data []byte) (*Metadata, error) {
	if len(data) > MaxMetadataSize {
		return nil, fmt.Errorf("metadata is %d bytes, the limit is %d", len(data), MaxMetadataSize)
	}
	if err := checkJSON(data); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	top, err := exactObject(data, metadataKeys)
	if err != nil {
		return nil, err
	}
	build, err := exactObject(top["BuildMetadata"], buildKeys)
	if err != nil {
		return nil, fmt.Errorf("BuildMetadata: %w", err)
	}
	m := &Metadata{DockerInfo: top["DockerInfo"], CustomMetadata: top["CustomMetadata"]}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *string
	}{
		{"ImageName", top["ImageName"], &m.ImageName},
		{"ImageVersion", top["ImageVersion"], &m.ImageVersion},
		{"BuildTime", build["BuildTime"], &m.BuildMetadata.BuildTime},
		{"BuildTool", build["BuildTool"], &m.BuildMetadata.BuildTool},
		{"BuildToolVersion", build["BuildToolVersion"], &m.BuildMetadata.BuildToolVersion},
		{"OperatingSystem", build["OperatingSystem"], &m.BuildMetadata.OperatingSystem},
		{"KernelVersion", build["KernelVersion"], &m.BuildMetadata.KernelVersion},
	} {
		if len(f.raw) == 0 || f.raw[0] != '"' {
			return nil, fmt.Errorf("%s is not a string", f.name)
		}
		if err := json.Unmarshal(f.raw, f.dst); err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return m, nil
}

// checkJSON validates data as exactly one JSON value with unique object keys and bounded
// depth. The decoder's tokens enforce the grammar; this tracks keys and nesting.
func checkJSON(data []byte) error {
	if !utf8.Valid(data) {
		return errors.New("JSON is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		keys    map[string]bool // nil for arrays
		wantKey bool
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return errors.New("unexpected end of JSON")
		}
		if err != nil {
			return err
		}
		top := len(stack) - 1
		if top >= 0 && stack[top].keys != nil && stack[top].wantKey {
			if k, ok := tok.(string); ok {
				if stack[top].keys[k] {
					return fmt.Errorf("duplicate key %q", k)
				}
				stack[top].keys[k] = true
				stack[top].wantKey = false
				continue
			}
			stack = stack[:top] // the only other token here is '}'
		} else {
			switch tok {
			case json.Delim('{'), json.Delim('['):
				if len(stack) == maxJSONDepth {
					return fmt.Errorf("nested deeper than %d", maxJSONDepth)
				}
				f := frame{}
				if tok == json.Delim('{') {
					f = frame{keys: map[string]bool{}, wantKey: true}
				}
				stack = append(stack, f)
				continue
			case json.Delim(']'):
				stack = stack[:top]
			}
		}
		// A value is complete: its object wants a key next, or the document is done.
		if n := len(stack); n > 0 {
			if stack[n-1].keys != nil {
				stack[n-1].wantKey = true
			}
			continue
		}
		if _, err := dec.Token(); err != io.EOF {
			return errors.New("data after the JSON value")
		}
		return nil
	}
}

// exactObject decodes a JSON object (already checked by checkJSON) whose keys must be
// exactly keys, compared case-sensitively.
func exactObject(data []byte, keys []string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if len(bytes.TrimSpace(data)) == 0 || bytes.TrimSpace(data)[0] != '{' {
		return nil, errors.New("not a JSON object")
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	for k := range m {
		if !slices.Contains(keys, k) {
			return nil, fmt.Errorf("unknown field %q", k)
		}
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			return nil, fmt.Errorf("missing field %q", k)
		}
	}
	return m, nil
}

// encode returns the metadata as nitro-cli writes it: serde_json::to_vec of
// EifIdentityInfo, compact, fields in struct order, strings escaped as serde_json does.
// DockerInfo and CustomMetadata go through serde_json::Value, whose objects are sorted by
// key; numbers are kept as written.
func (m *Metadata) encode() ([]byte, error) {
	var b []byte
	b = append(b, `{"ImageName":`...)
	b = appendJSONString(b, m.ImageName)
	b = append(b, `,"ImageVersion":`...)
	b = appendJSONString(b, m.ImageVersion)
	b = append(b, `,"BuildMetadata":{"BuildTime":`...)
	b = appendJSONString(b, m.BuildMetadata.BuildTime)
	b = append(b, `,"BuildTool":`...)
	b = appendJSONString(b, m.BuildMetadata.BuildTool)
	b = append(b, `,"BuildToolVersion":`...)
	b = appendJSONString(b, m.BuildMetadata.BuildToolVersion)
	b = append(b, `,"OperatingSystem":`...)
	b = appendJSONString(b, m.BuildMetadata.OperatingSystem)
	b = append(b, `,"KernelVersion":`...)
	b = appendJSONString(b, m.BuildMetadata.KernelVersion)
	b = append(b, `},"DockerInfo":`...)
	var err error
	if b, err = appendJSONValue(b, m.DockerInfo); err != nil {
		return nil, fmt.Errorf("DockerInfo: %w", err)
	}
	b = append(b, `,"CustomMetadata":`...)
	if b, err = appendJSONValue(b, m.CustomMetadata); err != nil {
		return nil, fmt.Errorf("CustomMetadata: %w", err)
	}
	return append(b, '}'), nil
}

// appendJSONString escapes like serde_json: \" \\ \b \f \n \r \t, other control characters
// as \u00xx, everything else (including non-ASCII) as is.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\b':
			b = append(b, `\b`...)
		case c == '\f':
			b = append(b, `\f`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '\r':
			b = append(b, `\r`...)
		case c == '\t':
			b = append(b, `\t`...)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// appendJSONValue re-encodes a JSON value compactly with sorted object keys; empty means null.
func appendJSONValue(b []byte, raw json.RawMessage) ([]byte, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return append(b, "null"...), nil
	}
	if err := checkJSON(raw); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return appendAny(b, v), nil
}

func appendAny(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		if v {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case json.Number:
		return append(b, v...)
	case string:
		return appendJSONString(b, v)
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendAny(b, e)
		}
		return append(b, ']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, strings.Compare)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendAny(b, v[k])
		}
		return append(b, '}')
	}
	panic(fmt.Sprintf("eif: unexpected JSON value %T", v))
}
