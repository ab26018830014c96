package content

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// checkStrictJSON reports whether b is exactly one JSON value that is valid
// UTF-8, nests at most maxDepth objects and arrays, and has no object with a
// repeated key. encoding/json would silently replace invalid UTF-8 and keep
// the last of repeated keys; two readers of the same bytes could then see
// different messages, which a signed consent must never allow.
func checkStrictJSON(b []byte, maxDepth int) error {
	if !utf8.Valid(b) {
		return errors.New("invalid UTF-8")
	}
	var stack []jsonFrame
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	values := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if len(stack) != 0 || values == 0 {
				return errors.New("unexpected end of JSON")
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("syntax: %s", truncate(err.Error(), 80))
		}
		if len(stack) == 0 && values > 0 {
			return errors.New("trailing data after the JSON value")
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:n-1]
				valueDone(&stack, &values)
				continue
			}
			key, ok := tok.(string)
			if !ok {
				return errors.New("object key is not a string")
			}
			if _, dup := stack[n-1].keys[key]; dup {
				return fmt.Errorf("duplicate key %q", truncate(key, 32))
			}
			stack[n-1].keys[key] = struct{}{}
			stack[n-1].wantKey = false
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) >= maxDepth {
				return fmt.Errorf("nested deeper than %d", maxDepth)
			}
			f := jsonFrame{object: tok == json.Delim('{'), wantKey: true}
			if f.object {
				f.keys = make(map[string]struct{})
			}
			stack = append(stack, f)
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone(&stack, &values)
		default:
			valueDone(&stack, &values)
		}
	}
}

// valueDone records that a value finished: the enclosing object now expects
// a key, or, at the top level, one more value was read.
func valueDone(stack *[]jsonFrame, values *int) {
	n := len(*stack)
	if n == 0 {
		*values++
		return
	}
	if (*stack)[n-1].object {
		(*stack)[n-1].wantKey = true
	}
}

// jsonFrame is one open object or array in checkStrictJSON.
type jsonFrame struct {
	object  bool
	wantKey bool
	keys    map[string]struct{}
}
