package relay

import (
	"bytes"
	"encoding/json"
	"iter"
	"unicode/utf8"
)

// This file walks JSON that is already known to be valid (Split checks the
// whole body with json.Valid first) without decoding it: the raw values it
// yields are sub-slices of the input, so events keep their bytes exactly
// and nothing is copied. Member names match exactly, as JSON defines them
// (after unescaping), unlike encoding/json's case-insensitive struct
// fields; of duplicate names the last wins, as with encoding/json.

// isObject reports whether the valid JSON value d is an object.
func isObject(d []byte) bool {
	i := skipSpace(d, 0)
	return i < len(d) && d[i] == '{'
}

// members yields the quoted name and the raw value of each member of the
// valid JSON object d; nothing if d is not an object.
func members(d []byte) iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		i := skipSpace(d, 0)
		if i >= len(d) || d[i] != '{' {
			return
		}
		i = skipSpace(d, i+1)
		for i < len(d) && d[i] == '"' {
			end := stringEnd(d, i)
			name := d[i:end]
			i = skipSpace(d, skipSpace(d, end)+1) // past ':'
			vend := valueEnd(d, i)
			if !yield(name, d[i:vend]) {
				return
			}
			i = skipSpace(d, vend)
			if i < len(d) && d[i] == ',' {
				i = skipSpace(d, i+1)
			}
		}
	}
}

// elements yields the raw value of each element of the valid JSON array
// d; nothing if d is not an array.
func elements(d []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		i := skipSpace(d, 0)
		if i >= len(d) || d[i] != '[' {
			return
		}
		i = skipSpace(d, i+1)
		for i < len(d) && d[i] != ']' {
			vend := valueEnd(d, i)
			if !yield(d[i:vend]) {
				return
			}
			i = skipSpace(d, vend)
			if i < len(d) && d[i] == ',' {
				i = skipSpace(d, i+1)
			}
		}
	}
}

// nameIs reports whether the quoted member name q is name.
func nameIs(q []byte, name string) bool {
	if bytes.IndexByte(q, '\\') < 0 {
		return len(q) == len(name)+2 && string(q[1:len(q)-1]) == name
	}
	s, ok := stringValue(q)
	return ok && s == name
}

// stringValue returns the JSON string v unquoted; ok is false if v is not
// a string. Invalid UTF-8 becomes U+FFFD, as with encoding/json.
func stringValue(v []byte) (s string, ok bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	inner := v[1 : len(v)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true
	}
	if json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

// skipSpace returns the index of the first non-whitespace byte of d at or
// after i.
func skipSpace(d []byte, i int) int {
	for i < len(d) {
		switch d[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the index just past the string that starts at d[i].
func stringEnd(d []byte, i int) int {
	for i++; i < len(d); i++ {
		switch d[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(d)
}

// valueEnd returns the index just past the value that starts at d[i].
func valueEnd(d []byte, i int) int {
	if i >= len(d) {
		return len(d)
	}
	switch d[i] {
	case '"':
		return stringEnd(d, i)
	case '{', '[':
		depth := 0
		for ; i < len(d); i++ {
			switch d[i] {
			case '"':
				i = stringEnd(d, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(d)
	default: // number, true, false, null
		for i < len(d) {
			switch d[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}
