package content

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// checkStrictJSON reports whether b is exactly one JSON value that is valid
// UTF-8, nests at most maxDepth objects and arrays, has no object with a
// repeated member name (compared after unescaping), and has no \u escape of
// an unpaired UTF-16 surrogate. encoding/json would silently replace invalid
// UTF-8 and lone surrogates with U+FFFD and keep the last of repeated
// names; two readers of the same bytes could then see different messages,
// which a signed consent must never allow (RFC 8259 §4, RFC 8785 §3.1).
func checkStrictJSON(b []byte, maxDepth int) error {
	if !utf8.Valid(b) {
		return errors.New("invalid UTF-8")
	}
	if !json.Valid(b) {
		// Let encoding/json say where; its messages quote no content.
		var v any
		err := json.Unmarshal(b, &v)
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return fmt.Errorf("syntax: %s", truncate(err.Error(), 80))
	}
	// b is one syntactically valid JSON value: only strings, brackets and
	// commas need looking at.
	var stack []jsonFrame
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			end, s, err := scanString(b, i)
			if err != nil {
				return err
			}
			if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
				if err := stack[n-1].addKey(s); err != nil {
					return err
				}
				stack[n-1].wantKey = false
			}
			i = end
		case '{', '[':
			if len(stack) >= maxDepth {
				return fmt.Errorf("nested deeper than %d", maxDepth)
			}
			stack = append(stack, jsonFrame{object: c == '{', wantKey: c == '{'})
		case '}', ']':
			stack = stack[:len(stack)-1]
		case ',':
			if n := len(stack); stack[n-1].object {
				stack[n-1].wantKey = true
			}
		}
	}
	return nil
}

// jsonFrame is one open object or array in checkStrictJSON.
type jsonFrame struct {
	object  bool
	wantKey bool
	keys    []string            // member names, while few
	keySet  map[string]struct{} // member names, once many
}

func (f *jsonFrame) addKey(k string) error {
	dup := func() error { return fmt.Errorf("duplicate key %q", truncate(k, 32)) }
	if f.keySet != nil {
		if _, ok := f.keySet[k]; ok {
			return dup()
		}
		f.keySet[k] = struct{}{}
		return nil
	}
	for _, e := range f.keys {
		if e == k {
			return dup()
		}
	}
	f.keys = append(f.keys, k)
	if len(f.keys) > 16 {
		f.keySet = make(map[string]struct{}, 2*len(f.keys))
		for _, e := range f.keys {
			f.keySet[e] = struct{}{}
		}
		f.keys = nil
	}
	return nil
}

// scanString reads the JSON string starting with the quote at b[start] of
// a valid JSON text and returns the index of its closing quote and its
// unescaped value. It refuses \u escapes of unpaired surrogates.
func scanString(b []byte, start int) (end int, s string, err error) {
	i := start + 1
	plain := true
	for ; b[i] != '"'; i++ {
		if b[i] == '\\' {
			plain = false
			i++ // the escaped character; \uXXXX's digits are plain bytes
		}
	}
	if plain {
		return i, string(b[start+1 : i]), nil
	}
	out := make([]byte, 0, i-start)
	for j := start + 1; j < i; j++ {
		c := b[j]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		j++
		switch b[j] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(b[j+1 : j+5])
			j += 4
			if utf16.IsSurrogate(r) {
				// A high surrogate must be followed by \u and a low one.
				if r >= 0xDC00 || j+6 >= i || b[j+1] != '\\' || b[j+2] != 'u' {
					return 0, "", errors.New("unpaired UTF-16 surrogate in a \\u escape")
				}
				r2 := hex4(b[j+3 : j+7])
				if r2 < 0xDC00 || r2 > 0xDFFF {
					return 0, "", errors.New("unpaired UTF-16 surrogate in a \\u escape")
				}
				r = utf16.DecodeRune(r, r2)
				j += 6
			}
			out = utf8.AppendRune(out, r)
		default: // '"', '\\', '/'
			out = append(out, b[j])
		}
	}
	return i, string(out), nil
}

// hex4 decodes four hex digits, which json.Valid has checked.
func hex4(h []byte) rune {
	var r rune
	for _, c := range h {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}
