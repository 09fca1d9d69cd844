package httpsig

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Style selects how component names are written on the lines of the
// signature base.
type Style int

const (
	// Quoted is RFC 9421 and Upvest's draft-15: `"@method": POST`.
	Quoted Style = iota
	// Unquoted is what Upvest's draft-06 signer writes: `@method: POST`.
	Unquoted
)

func (s Style) String() string {
	if s == Unquoted {
		return "unquoted"
	}
	return "quoted"
}

// Base builds the signature base for r: one line per covered component in
// the given order, then the @signature-params line carrying member (the
// serialized inner list and parameters, exactly as sent). Lines are joined
// by "\n" with no trailing newline.
//
// Header components are looked up case-insensitively; several values are
// trimmed and joined with ", ". "host" falls back to r.Host and
// "content-length" to r.ContentLength, because net/http keeps those outside
// r.Header. A component the request lacks yields ErrMissingComponent.
func Base(r *http.Request, components []string, member string, style Style) ([]byte, error) {
	var b strings.Builder
	b.Grow(256)
	for _, c := range components {
		v, err := componentValue(r, c)
		if err != nil {
			return nil, err
		}
		writeName(&b, c, style)
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteByte('\n')
	}
	writeName(&b, "@signature-params", style)
	b.WriteString(": ")
	b.WriteString(member)
	return []byte(b.String()), nil
}

func writeName(b *strings.Builder, name string, style Style) {
	if style == Unquoted {
		b.WriteString(name)
		return
	}
	b.WriteByte('"')
	b.WriteString(name)
	b.WriteByte('"')
}

func componentValue(r *http.Request, name string) (string, error) {
	if strings.HasPrefix(name, "@") {
		return derived(r, name)
	}
	lname := strings.ToLower(name)
	vals := r.Header.Values(lname)
	if len(vals) == 0 {
		switch lname {
		case "host":
			if h := requestHost(r); h != "" {
				return h, nil
			}
		case "content-length":
			if r.ContentLength > 0 {
				return strconv.FormatInt(r.ContentLength, 10), nil
			}
		}
		return "", fmt.Errorf("%w: header %q", ErrMissingComponent, name)
	}
	if len(vals) == 1 {
		return strings.TrimSpace(vals[0]), nil
	}
	trimmed := make([]string, len(vals))
	for i, v := range vals {
		trimmed[i] = strings.TrimSpace(v)
	}
	return strings.Join(trimmed, ", "), nil
}

func derived(r *http.Request, name string) (string, error) {
	switch name {
	case "@method":
		return r.Method, nil
	case "@path":
		if p := r.URL.EscapedPath(); p != "" {
			return p, nil
		}
		return "/", nil
	case "@query":
		return "?" + r.URL.RawQuery, nil
	case "@authority":
		if h := requestHost(r); h != "" {
			return strings.ToLower(h), nil
		}
		return "", fmt.Errorf("%w: %s", ErrMissingComponent, name)
	case "@scheme":
		return scheme(r), nil
	case "@request-target":
		return r.URL.RequestURI(), nil
	case "@target-uri":
		return scheme(r) + "://" + strings.ToLower(requestHost(r)) + r.URL.RequestURI(), nil
	}
	return "", fmt.Errorf("%w: derived component %q", ErrUnsupported, name)
}

func requestHost(r *http.Request) string {
	if r.Host != "" {
		return r.Host
	}
	return r.URL.Host
}

func scheme(r *http.Request) string {
	if r.URL.Scheme != "" {
		return strings.ToLower(r.URL.Scheme)
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}
