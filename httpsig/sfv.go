package httpsig

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// Member is one member of a Signature-Input dictionary: a label, the covered
// component names, its parameters, and the member value exactly as received
// (which is what the @signature-params base line must repeat).
type Member struct {
	Label      string
	Components []string
	Params     Params
	// Raw is the serialized inner list with its parameters as it appeared
	// in the header, e.g. `("@method" "@path");keyid="k";created=1`.
	Raw string
}

// Params are the signature parameters this package understands. Unknown
// parameters are kept in Raw and otherwise ignored.
type Params struct {
	KeyID   string
	Alg     string
	Nonce   string
	Created int64 // unix seconds; 0 when absent
	Expires int64 // unix seconds; 0 when absent
}

// ParseSignatureInput parses a Signature-Input header value into its members,
// in header order.
func ParseSignatureInput(v string) ([]Member, error) {
	var out []Member
	err := dictionary(v, "Signature-Input", func(p *parser, label string) error {
		start := p.i
		comps, err := p.innerList()
		if err != nil {
			return err
		}
		params, err := p.params()
		if err != nil {
			return err
		}
		out = append(out, Member{Label: label, Components: comps, Params: params, Raw: v[start:p.i]})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ParseSignature parses a Signature header value: a dictionary of byte
// sequences (label=:base64:).
func ParseSignature(v string) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := dictionary(v, "Signature", func(p *parser, label string) error {
		b, err := p.byteSeq()
		if err != nil {
			return err
		}
		// Parameters on a signature value are allowed by RFC 8941; skip them.
		if _, err := p.params(); err != nil {
			return err
		}
		out[label] = b
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// dictionary walks the members of an RFC 8941 dictionary, calling member
// with the parser positioned on each value after "label=". It refuses an
// empty dictionary and members without a value; name is used in errors.
func dictionary(v, name string, member func(p *parser, label string) error) error {
	p := parser{s: v}
	n := 0
	seen := map[string]bool{}
	for {
		p.skipOWS()
		if p.done() {
			break
		}
		label, err := p.key()
		if err != nil {
			return err
		}
		if seen[label] {
			// RFC 8941 lets the last duplicate win; a signature header
			// with two meanings for one label is refused instead.
			return fmt.Errorf("%w: %s has label %q twice", ErrSyntax, name, label)
		}
		seen[label] = true
		if !p.consume('=') {
			return fmt.Errorf("%w: %s member %q has no value", ErrSyntax, name, label)
		}
		if err := member(&p, label); err != nil {
			return err
		}
		n++
		p.skipOWS()
		if p.done() {
			break
		}
		if !p.consume(',') {
			return fmt.Errorf("%w: expected ',' at offset %d", ErrSyntax, p.i)
		}
	}
	if n == 0 {
		return fmt.Errorf("%w: empty %s", ErrSyntax, name)
	}
	return nil
}

// FormatMember serializes components and parameters the way Upvest's signer
// does: quoted names, then keyid, created, nonce, expires (and alg last when
// set). Zero-valued parameters are left out.
func FormatMember(components []string, p Params) string {
	var b strings.Builder
	b.WriteByte('(')
	for i, c := range components {
		if i > 0 {
			b.WriteByte(' ')
		}
		writeSFString(&b, c)
	}
	b.WriteByte(')')
	if p.KeyID != "" {
		b.WriteString(";keyid=")
		writeSFString(&b, p.KeyID)
	}
	if p.Created != 0 {
		b.WriteString(";created=")
		b.WriteString(strconv.FormatInt(p.Created, 10))
	}
	if p.Nonce != "" {
		b.WriteString(";nonce=")
		writeSFString(&b, p.Nonce)
	}
	if p.Expires != 0 {
		b.WriteString(";expires=")
		b.WriteString(strconv.FormatInt(p.Expires, 10))
	}
	if p.Alg != "" {
		b.WriteString(";alg=")
		writeSFString(&b, p.Alg)
	}
	return b.String()
}

// writeSFString writes s as an RFC 8941 sf-string: quoted, with '"' and
// '\\' escaped. Bytes outside printable ASCII cannot appear in an sf-string;
// they are written as '?' so the output always parses (Signer refuses such
// values before they get here).
func writeSFString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e:
			b.WriteByte('?')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

// printable reports whether s is non-empty printable ASCII, the only
// content an sf-string can carry.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return s != ""
}

// FormatSignature serializes one Signature dictionary member.
func FormatSignature(label string, sig []byte) string {
	return label + "=:" + base64.StdEncoding.EncodeToString(sig) + ":"
}

// parser is a cursor over a structured-field header value. It implements the
// subset of RFC 8941 that RFC 9421 headers use.
type parser struct {
	s string
	i int
}

func (p *parser) done() bool { return p.i >= len(p.s) }

func (p *parser) skipOWS() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *parser) skipSP() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *parser) consume(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// key parses an sf-key: lcalpha / "*" then lcalpha / DIGIT / "_" / "-" / "." / "*".
func (p *parser) key() (string, error) {
	start := p.i
	if p.done() || !(isLCAlpha(p.s[p.i]) || p.s[p.i] == '*') {
		return "", fmt.Errorf("%w: expected key at offset %d", ErrSyntax, p.i)
	}
	for p.i < len(p.s) {
		c := p.s[p.i]
		if isLCAlpha(c) || isDigit(c) || c == '_' || c == '-' || c == '.' || c == '*' {
			p.i++
			continue
		}
		break
	}
	return p.s[start:p.i], nil
}

// innerList parses ( sf-string *( SP sf-string ) ); only strings are valid
// component identifiers. Component parameters (;sf, ;key=...) are refused.
func (p *parser) innerList() ([]string, error) {
	if !p.consume('(') {
		return nil, fmt.Errorf("%w: expected '(' at offset %d", ErrSyntax, p.i)
	}
	var out []string
	for {
		p.skipSP()
		if p.consume(')') {
			return out, nil
		}
		if len(out) > 0 && p.s[p.i-1] != ' ' {
			return nil, fmt.Errorf("%w: items must be separated by a space at offset %d", ErrSyntax, p.i)
		}
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		if p.i < len(p.s) && p.s[p.i] == ';' {
			return nil, fmt.Errorf("%w: component parameters on %q", ErrUnsupported, s)
		}
		out = append(out, s)
		if len(out) > maxComponents {
			return nil, fmt.Errorf("%w: more than %d components", ErrSyntax, maxComponents)
		}
	}
}

const maxComponents = 64

// params parses *( ";" key [ "=" bare-item ] ) into Params.
func (p *parser) params() (Params, error) {
	var out Params
	for p.consume(';') {
		p.skipSP()
		k, err := p.key()
		if err != nil {
			return out, err
		}
		if !p.consume('=') {
			continue // boolean true parameter; none of ours
		}
		switch k {
		case "keyid", "alg", "nonce", "tag":
			v, err := p.bareString()
			if err != nil {
				return out, fmt.Errorf("parameter %s: %w", k, err)
			}
			switch k {
			case "keyid":
				out.KeyID = v
			case "alg":
				out.Alg = v
			case "nonce":
				out.Nonce = v
			}
		case "created", "expires":
			n, err := p.integer()
			if err != nil {
				return out, fmt.Errorf("parameter %s: %w", k, err)
			}
			if k == "created" {
				out.Created = n
			} else {
				out.Expires = n
			}
		default:
			if err := p.skipBareItem(); err != nil {
				return out, fmt.Errorf("parameter %s: %w", k, err)
			}
		}
	}
	return out, nil
}

// bareString accepts an sf-string, or an sf-token for leniency (some signers
// send nonce or keyid unquoted).
func (p *parser) bareString() (string, error) {
	if p.i < len(p.s) && p.s[p.i] == '"' {
		return p.str()
	}
	return p.token()
}

func (p *parser) str() (string, error) {
	if !p.consume('"') {
		return "", fmt.Errorf("%w: expected string at offset %d", ErrSyntax, p.i)
	}
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '\\':
			if p.done() {
				return "", fmt.Errorf("%w: unterminated escape", ErrSyntax)
			}
			e := p.s[p.i]
			p.i++
			if e != '"' && e != '\\' {
				return "", fmt.Errorf("%w: bad escape", ErrSyntax)
			}
			b.WriteByte(e)
		case c == '"':
			return b.String(), nil
		case c < 0x20 || c > 0x7e:
			return "", fmt.Errorf("%w: non-printable byte in string", ErrSyntax)
		default:
			b.WriteByte(c)
		}
	}
	return "", fmt.Errorf("%w: unterminated string", ErrSyntax)
}

func (p *parser) token() (string, error) {
	start := p.i
	if p.done() || !(isAlpha(p.s[p.i]) || p.s[p.i] == '*') {
		return "", fmt.Errorf("%w: expected token at offset %d", ErrSyntax, p.i)
	}
	for p.i < len(p.s) && (isTChar(p.s[p.i]) || p.s[p.i] == ':' || p.s[p.i] == '/') {
		p.i++
	}
	return p.s[start:p.i], nil
}

func (p *parser) integer() (int64, error) {
	start := p.i
	p.consume('-')
	for p.i < len(p.s) && isDigit(p.s[p.i]) {
		p.i++
	}
	if p.i-start > 16 || p.i == start || (p.i-start == 1 && p.s[start] == '-') {
		return 0, fmt.Errorf("%w: expected integer at offset %d", ErrSyntax, start)
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		return 0, fmt.Errorf("%w: decimal where an integer is required", ErrSyntax)
	}
	return strconv.ParseInt(p.s[start:p.i], 10, 64)
}

func (p *parser) byteSeq() ([]byte, error) {
	if !p.consume(':') {
		return nil, fmt.Errorf("%w: expected byte sequence at offset %d", ErrSyntax, p.i)
	}
	end := strings.IndexByte(p.s[p.i:], ':')
	if end < 0 {
		return nil, fmt.Errorf("%w: unterminated byte sequence", ErrSyntax)
	}
	enc := p.s[p.i : p.i+end]
	p.i += end + 1
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		// RFC 8941 allows parsers to accept unpadded base64.
		if b2, err2 := base64.RawStdEncoding.DecodeString(enc); err2 == nil {
			return b2, nil
		}
		return nil, fmt.Errorf("%w: byte sequence: %v", ErrSyntax, err)
	}
	return b, nil
}

func (p *parser) skipBareItem() error {
	if p.done() {
		return fmt.Errorf("%w: missing value", ErrSyntax)
	}
	switch c := p.s[p.i]; {
	case c == '"':
		_, err := p.str()
		return err
	case c == ':':
		_, err := p.byteSeq()
		return err
	case c == '?':
		p.i++
		if p.consume('0') || p.consume('1') {
			return nil
		}
		return fmt.Errorf("%w: bad boolean", ErrSyntax)
	case c == '-' || isDigit(c):
		start := p.i
		p.consume('-')
		for p.i < len(p.s) && (isDigit(p.s[p.i]) || p.s[p.i] == '.') {
			p.i++
		}
		if p.i-start > 20 {
			return fmt.Errorf("%w: number too long", ErrSyntax)
		}
		return nil
	default:
		_, err := p.token()
		return err
	}
}

func isLCAlpha(c byte) bool { return c >= 'a' && c <= 'z' }
func isAlpha(c byte) bool   { return isLCAlpha(c) || (c >= 'A' && c <= 'Z') }
func isDigit(c byte) bool   { return c >= '0' && c <= '9' }

func isTChar(c byte) bool {
	if isAlpha(c) || isDigit(c) {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
