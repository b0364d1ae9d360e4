package kmsfake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// decodeStrict decodes one JSON value into v: no unknown fields, no key twice in an object (compared
// case-insensitively, as encoding/json matches field names), nothing after the value.
func decodeStrict(data []byte, v any) error {
	if err := checkNoDuplicateKeys(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// checkNoDuplicateKeys walks the JSON tokens and fails on a repeated object key.
func checkNoDuplicateKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		keys    map[string]bool // nil for an array
		wantKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if n := len(stack); n > 0 && stack[n-1].keys != nil && stack[n-1].wantKey {
			if key, ok := tok.(string); ok {
				if stack[n-1].keys[strings.ToLower(key)] {
					return fmt.Errorf("key %q appears twice in an object", key)
				}
				stack[n-1].keys[strings.ToLower(key)] = true
				stack[n-1].wantKey = false
				continue
			}
			// Otherwise the token is the object's closing '}'.
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, wantKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended: the enclosing object wants its next key.
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			stack[n-1].wantKey = true
		}
	}
}

// rawOneOrMany is IAM's "a string or a list of strings" (and "a statement or a list of statements").
type rawOneOrMany[T any] []T

func (m *rawOneOrMany[T]) UnmarshalJSON(b []byte) error {
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("[")) {
		var list []T
		if err := decodeStrict(b, &list); err != nil {
			return err
		}
		*m = list
		return nil
	}
	var one T
	if err := decodeStrict(b, &one); err != nil {
		return err
	}
	*m = rawOneOrMany[T]{one}
	return nil
}

// rawPrincipal is "*" or {"AWS": ARN | [ARN, ...]}.
type rawPrincipal []string

func (p *rawPrincipal) UnmarshalJSON(b []byte) error {
	var star string
	if err := json.Unmarshal(b, &star); err == nil {
		if star != "*" {
			return fmt.Errorf("principal %q is neither \"*\" nor {\"AWS\": ...}", star)
		}
		*p = rawPrincipal{"*"}
		return nil
	}
	var obj struct{ AWS rawOneOrMany[string] }
	if err := decodeStrict(b, &obj); err != nil {
		return fmt.Errorf("principal: %w", err)
	}
	*p = rawPrincipal(obj.AWS)
	return nil
}
