package relay

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// This file is the relay's JSON reader: one pass over a package that
// validates it exactly as encoding/json does (json.Valid: the grammar of
// RFC 8259, string escapes, control characters refused inside strings,
// invalid UTF-8 accepted, nesting at most maxDepth deep, nothing but
// whitespace after the value) and, on the way, splits the payload into its
// elements and picks the fields the relay needs out of each one. Nothing is
// decoded into Go values and nothing is copied: elements are sub-slices of
// the body, and field values are recorded as offsets into it until
// parsed.finish turns them all into strings with a single copy.
//
// Member names match exactly, as JSON defines them (after unescaping),
// unlike encoding/json's case-insensitive struct fields; of duplicate names
// the last wins, as with encoding/json. FuzzParsePackage checks all of this
// against encoding/json itself.

// maxDepth is encoding/json's nesting limit: 10000 arrays or objects deep
// is valid, one more is not.
const maxDepth = 10000

// errSyntax is the parser's only error: the input is not valid JSON.
var errSyntax = errors.New("relay: JSON syntax error")

// field is a string value found while parsing: the offsets of its
// contents (without quotes) in the input, or, for a value that had to be
// decoded (escapes, invalid UTF-8), the index of the decoded text in the
// parser's decoded list. The zero field is a member that was missing or not
// a string.
type field struct {
	off, end int32
	kind     uint8
}

// Kinds of field.
const (
	fieldNone    = iota
	fieldPlain   // d[off:end] is the exact text
	fieldDecoded // decoded[off] is the text
)

// fields are the members the relay reads from an event, by fieldIndex.
type fields [numFields]field

const (
	fID = iota
	fType
	fCreatedAt
	fWebhookID
	fObjectID
	numFields
)

// parser reads d from position i.
type parser struct {
	d          []byte
	i          int
	depth      int
	depthLimit int      // > 0: nesting deeper than this stops with errParseLimit
	decoded    []string // texts of fieldDecoded fields
}

// strClass is 0 for the bytes a JSON string passes over as they are
// (printable ASCII but '"' and '\\'), 1 for the others.
var strClass = func() (t [256]byte) {
	for c := range 0x100 {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			t[c] = 1
		}
	}
	return t
}()

func (p *parser) ws() {
	for p.i < len(p.d) {
		switch p.d[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// peek returns the byte at p.i, or 0 at the end of the input.
func (p *parser) peek() byte {
	if p.i < len(p.d) {
		return p.d[p.i]
	}
	return 0
}

// str reads the string at p.i (which is '"') and leaves p.i past its
// closing quote. It reports whether the string has escapes or bytes
// outside ASCII, the cases in which its raw contents are not its text.
func (p *parser) str() (esc, nonASCII bool, err error) {
	d := p.d
	i := p.i + 1
	for {
		// Eight bytes at a time while none of them needs a look, then
		// byte by byte up to the one that does.
		for i+8 <= len(d) && !needsLook(binary.LittleEndian.Uint64(d[i:])) {
			i += 8
		}
		for i < len(d) && strClass[d[i]] == 0 {
			i++
		}
		if i >= len(d) {
			return false, false, errSyntax
		}
		switch c := d[i]; {
		case c >= 0x80:
			nonASCII = true
			i++
		case c == '"':
			p.i = i + 1
			return esc, nonASCII, nil
		case c == '\\':
			esc = true
			if i+1 >= len(d) {
				return false, false, errSyntax
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) || !isHex(d[i+2]) || !isHex(d[i+3]) || !isHex(d[i+4]) || !isHex(d[i+5]) {
					return false, false, errSyntax
				}
				i += 6
			default:
				return false, false, errSyntax
			}
		default: // a control character
			return false, false, errSyntax
		}
	}
}

// needsLook reports whether any of the eight bytes in x is one that ends
// a string's fast scan (strClass 1): non-ASCII, a control character, '"'
// or '\\'. Each term is the classic "has a byte less than n" test, which
// is exact about whether there is one once x has no byte >= 0x80.
func needsLook(x uint64) bool {
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	q := x ^ ('"' * lsb)  // zero where x has '"'
	b := x ^ ('\\' * lsb) // zero where x has '\\'
	return (x|(x-0x20*lsb)&^x|(q-lsb)&^q|(b-lsb)&^b)&msb != 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// strField reads the string at p.i into f.
func (p *parser) strField(f *field) error {
	start := p.i
	esc, nonASCII, err := p.str()
	if err != nil {
		return err
	}
	inner := p.d[start+1 : p.i-1]
	if !esc && (!nonASCII || utf8.Valid(inner)) {
		*f = field{off: int32(start + 1), end: int32(p.i - 1), kind: fieldPlain}
		return nil
	}
	// Escapes or invalid UTF-8: let encoding/json decode it, so the text is
	// exactly its (U+FFFD for bad bytes and lone surrogates).
	var s string
	if json.Unmarshal(p.d[start:p.i], &s) != nil {
		return errSyntax
	}
	*f = field{off: int32(len(p.decoded)), kind: fieldDecoded}
	p.decoded = append(p.decoded, s)
	return nil
}

// name reads the member name at p.i and the colon after it, leaving p.i at
// the member's value. It returns the name's contents; decoded is set
// instead when the name has escapes.
func (p *parser) name() (raw []byte, decoded string, err error) {
	if p.peek() != '"' {
		return nil, "", errSyntax
	}
	start := p.i
	esc, _, err := p.str()
	if err != nil {
		return nil, "", err
	}
	end := p.i
	p.ws()
	if p.peek() != ':' {
		return nil, "", errSyntax
	}
	p.i++
	p.ws()
	if esc {
		var s string // declared here: taking its address moves it to the heap
		if json.Unmarshal(p.d[start:end], &s) != nil {
			return nil, "", errSyntax
		}
		return nil, s, nil
	}
	// Without escapes the raw bytes are the name: invalid UTF-8 would
	// decode to U+FFFD, which none of the names the relay looks for has.
	return p.d[start+1 : end-1], "", nil
}

// is reports whether a name from name() is want.
func is(raw []byte, decoded, want string) bool {
	if raw != nil {
		return string(raw) == want
	}
	return decoded == want
}

// value reads any JSON value at p.i, validating it.
func (p *parser) value() error {
	switch c := p.peek(); c {
	case '{':
		return p.object(nil)
	case '[':
		return p.array(nil)
	case '"':
		_, _, err := p.str()
		return err
	case 't':
		return p.literal("true")
	case 'f':
		return p.literal("false")
	case 'n':
		return p.literal("null")
	default:
		if c == '-' || '0' <= c && c <= '9' {
			return p.number()
		}
		return errSyntax
	}
}

func (p *parser) literal(lit string) error {
	if len(p.d)-p.i < len(lit) || string(p.d[p.i:p.i+len(lit)]) != lit {
		return errSyntax
	}
	p.i += len(lit)
	return nil
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?; what may
// follow it is checked by the caller.
func (p *parser) number() error {
	d, i := p.d, p.i
	if d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		i = digits(d, i+1)
	default:
		return errSyntax
	}
	if i < len(d) && d[i] == '.' {
		j := digits(d, i+1)
		if j == i+1 {
			return errSyntax
		}
		i = j
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := digits(d, i)
		if j == i {
			return errSyntax
		}
		i = j
	}
	p.i = i
	return nil
}

func digits(d []byte, i int) int {
	for i < len(d) && '0' <= d[i] && d[i] <= '9' {
		i++
	}
	return i
}

// enter and leave track the nesting depth of arrays and objects.
func (p *parser) enter() error {
	p.depth++
	switch {
	case p.depth > maxDepth:
		return errSyntax
	case p.depthLimit > 0 && p.depth > p.depthLimit:
		return errParseLimit
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

// object reads the object at p.i. For each member, member (when not nil)
// is called with p.i at the member's value and must read that value;
// without it every value is read and validated.
func (p *parser) object(member func(raw []byte, decoded string) error) error {
	if err := p.enter(); err != nil {
		return err
	}
	p.i++ // '{'
	p.ws()
	if p.peek() == '}' {
		p.i++
		p.leave()
		return nil
	}
	for {
		raw, decoded, err := p.name()
		if err != nil {
			return err
		}
		if member != nil {
			err = member(raw, decoded)
		} else {
			err = p.value()
		}
		if err != nil {
			return err
		}
		p.ws()
		switch p.peek() {
		case ',':
			p.i++
			p.ws()
		case '}':
			p.i++
			p.leave()
			return nil
		default:
			return errSyntax
		}
	}
}

// array reads the array at p.i. For each element, element (when not nil)
// is called with p.i at the element and must read it.
func (p *parser) array(element func() error) error {
	if err := p.enter(); err != nil {
		return err
	}
	p.i++ // '['
	p.ws()
	if p.peek() == ']' {
		p.i++
		p.leave()
		return nil
	}
	for {
		var err error
		if element != nil {
			err = element()
		} else {
			err = p.value()
		}
		if err != nil {
			return err
		}
		p.ws()
		switch p.peek() {
		case ',':
			p.i++
			p.ws()
		case ']':
			p.i++
			p.leave()
			return nil
		default:
			return errSyntax
		}
	}
}

// event reads the element at p.i into el: its raw bytes and, when it is an
// object, the fields the relay needs.
func (p *parser) event(el *element) error {
	start := p.i
	el.isObject = p.peek() == '{'
	var err error
	if el.isObject {
		err = p.object(func(raw []byte, decoded string) error {
			var f *field
			switch {
			case is(raw, decoded, "id"):
				f = &el.f[fID]
			case is(raw, decoded, "type"):
				f = &el.f[fType]
			case is(raw, decoded, "created_at"):
				f = &el.f[fCreatedAt]
			case is(raw, decoded, "webhook_id"):
				f = &el.f[fWebhookID]
			case is(raw, decoded, "object"):
				el.f[fObjectID] = field{} // the last "object" wins
				if p.peek() == '{' {
					return p.objectID(&el.f[fObjectID])
				}
				return p.value()
			default:
				return p.value()
			}
			if p.peek() == '"' {
				return p.strField(f)
			}
			*f = field{} // the last one wins, and it is not a string
			return p.value()
		})
	} else {
		err = p.value()
	}
	el.raw = p.d[start:p.i]
	return err
}

// objectID reads the object at p.i, recording its "id" member in f.
func (p *parser) objectID(f *field) error {
	return p.object(func(raw []byte, decoded string) error {
		if !is(raw, decoded, "id") {
			return p.value()
		}
		if p.peek() == '"' {
			return p.strField(f)
		}
		*f = field{}
		return p.value()
	})
}

// document reads d as a whole JSON text: the value read by top (p.value
// when nil), then nothing but whitespace.
func (p *parser) document(top func() error) error {
	p.ws()
	if p.i >= len(p.d) {
		return errSyntax
	}
	var err error
	if top != nil {
		err = top()
	} else {
		err = p.value()
	}
	if err != nil {
		return err
	}
	p.ws()
	if p.i != len(p.d) {
		return errSyntax
	}
	return nil
}
