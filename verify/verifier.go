package verify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/upvest-relay/upvest-relay/httpsig"
)

// Defaults for Verifier (RELAY_SIGNATURE_MAX_AGE, RELAY_CLOCK_SKEW).
const (
	DefaultMaxAge    = 5 * time.Minute
	DefaultClockSkew = 30 * time.Second
)

// Verifier checks the HTTP Message Signature of inbound webhook requests.
// It is safe for concurrent use.
type Verifier struct {
	keys   KeySource
	maxAge time.Duration
	skew   time.Duration
	now    func() time.Time
}

// Option configures a Verifier.
type Option func(*Verifier)

// WithMaxAge rejects signatures whose created is older than d
// (default DefaultMaxAge).
func WithMaxAge(d time.Duration) Option { return func(v *Verifier) { v.maxAge = d } }

// WithClockSkew tolerates d of clock difference for created in the future
// and expires in the past (default DefaultClockSkew).
func WithClockSkew(d time.Duration) Option { return func(v *Verifier) { v.skew = d } }

// WithNow sets the clock (default time.Now).
func WithNow(now func() time.Time) Option { return func(v *Verifier) { v.now = now } }

// New returns a Verifier that takes its keys from keys. It fails on a nil
// key source, a non-positive max age or a negative clock skew.
func New(keys KeySource, opts ...Option) (*Verifier, error) {
	v := &Verifier{keys: keys, maxAge: DefaultMaxAge, skew: DefaultClockSkew, now: time.Now}
	for _, o := range opts {
		o(v)
	}
	switch {
	case v.keys == nil:
		return nil, errors.New("verify: no key source")
	case v.maxAge <= 0:
		return nil, fmt.Errorf("verify: max age must be positive, got %s", v.maxAge)
	case v.skew < 0:
		return nil, fmt.Errorf("verify: clock skew must not be negative, got %s", v.skew)
	case v.now == nil:
		return nil, errors.New("verify: nil clock")
	}
	return v, nil
}

// Verify checks that r, whose raw body is body, carries a valid signature
// from a known key. It returns nil or an error wrapping exactly one of the
// package's sentinels:
//
//   - ErrNoSignature: Signature or Signature-Input is absent;
//   - ErrMalformed: either cannot be parsed or repeats a label, there is
//     no sig1 member with a Signature and not exactly one member, or the
//     chosen member lacks keyid or created, or expires before created;
//   - ErrWeakCoverage: the member does not cover @method, @path and a body
//     digest (digest or content-digest);
//   - ErrFuture, ErrStale: created is more than the clock skew ahead, or
//     older than the max age, or expires lies more than the skew behind;
//   - ErrMissingComponent: a covered component is absent from r;
//   - ErrNoDigest, ErrDigestMismatch: body is not empty and no digest or
//     content-digest is covered, or the covered digest does not match body;
//   - ErrUnknownKey, ErrKeysUnavailable: from the key source, by keyid;
//   - ErrBadSignature: the signature verifies over neither the unquoted
//     (Upvest draft-06) nor the quoted (RFC 9421, Upvest draft-15) base.
//
// The member labelled sig1 is verified, else the only member; see pick. Every check that needs no key and no public-key operation runs
// first. Verify never logs; errors carry no signature or body bytes.
func (v *Verifier) Verify(ctx context.Context, r *http.Request, body []byte) error {
	if r == nil || r.URL == nil {
		return fmt.Errorf("%w: no request", ErrMalformed)
	}
	input, sigs := joined(r.Header, "Signature-Input"), joined(r.Header, "Signature")
	if input == "" || sigs == "" {
		return ErrNoSignature
	}
	members, err := httpsig.ParseSignatureInput(input)
	if err != nil {
		return fmt.Errorf("%w: Signature-Input: %w", ErrMalformed, err)
	}
	sigByLabel, err := httpsig.ParseSignature(sigs)
	if err != nil {
		return fmt.Errorf("%w: Signature: %w", ErrMalformed, err)
	}
	m, sig, ok := pick(members, sigByLabel)
	switch {
	case !ok:
		return fmt.Errorf("%w: no Signature-Input member has a Signature", ErrMalformed)
	case len(sig) == 0:
		return fmt.Errorf("%w: empty signature", ErrMalformed)
	case m.Params.KeyID == "":
		return fmt.Errorf("%w: no keyid", ErrMalformed)
	case m.Params.Created == 0:
		return fmt.Errorf("%w: no created", ErrMalformed)
	case m.Params.Expires != 0 && m.Params.Expires < m.Params.Created:
		return fmt.Errorf("%w: expires before created", ErrMalformed)
	}
	if err := covered(m.Components); err != nil {
		return err
	}
	if err := v.fresh(m.Params); err != nil {
		return err
	}

	first, second := httpsig.Unquoted, httpsig.Quoted
	if strings.TrimSpace(r.Header.Get("Upvest-Signature-Version")) == "15" {
		first, second = second, first
	}
	base, err := httpsig.Base(r, m.Components, m.Raw, first)
	if err != nil {
		if errors.Is(err, httpsig.ErrMissingComponent) {
			return fmt.Errorf("%w: %w", ErrMissingComponent, err)
		}
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := checkBodyDigest(r.Header, m.Components, body); err != nil {
		return err
	}

	pub, err := v.keys.Key(ctx, m.Params.KeyID)
	if err != nil {
		if errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrKeysUnavailable) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
	}
	if httpsig.VerifyBase(pub, base, sig) == nil {
		return nil
	}
	base, err = httpsig.Base(r, m.Components, m.Raw, second)
	if err == nil && httpsig.VerifyBase(pub, base, sig) == nil {
		return nil
	}
	return fmt.Errorf("%w (keyid %q)", ErrBadSignature, short(m.Params.KeyID))
}

// fresh checks created and expires against the clock.
func (v *Verifier) fresh(p httpsig.Params) error {
	now := v.now()
	created := time.Unix(p.Created, 0)
	if created.After(now.Add(v.skew)) {
		return fmt.Errorf("%w: created %s ahead", ErrFuture, created.Sub(now).Round(time.Second))
	}
	if age := now.Sub(created); age > v.maxAge {
		return fmt.Errorf("%w: created %s ago, max age %s", ErrStale, age.Round(time.Second), v.maxAge)
	}
	if p.Expires != 0 {
		if expires := time.Unix(p.Expires, 0); now.After(expires.Add(v.skew)) {
			return fmt.Errorf("%w: expired %s ago", ErrStale, now.Sub(expires).Round(time.Second))
		}
	}
	return nil
}

// checkBodyDigest checks body against the digest header the signature
// covers: Content-Digest when covered, else Digest. Only a covered header
// is consulted, so an added, uncovered digest header cannot vouch for a
// different body. Without a covered digest only an empty body passes.
func checkBodyDigest(h http.Header, components []string, body []byte) error {
	name := ""
	for _, c := range components {
		switch strings.ToLower(c) {
		case "content-digest":
			name = "Content-Digest"
		case "digest":
			if name == "" {
				name = "Digest"
			}
		}
	}
	if name == "" {
		if len(body) == 0 {
			return nil
		}
		return fmt.Errorf("%w: the signature covers neither digest nor content-digest", ErrNoDigest)
	}
	err := httpsig.CheckDigest(http.Header{name: h.Values(name)}, body)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, httpsig.ErrDigestMismatch):
		return fmt.Errorf("%w: %s", ErrDigestMismatch, name)
	default:
		return fmt.Errorf("%w: %s: %w", ErrNoDigest, name, err)
	}
}

// pick chooses the one member to verify: the one labelled sig1 (Upvest's
// label) when it has a signature, else the only member, when there is
// exactly one in each header. Several members without sig1 are refused
// rather than tried one by one: each try would cost a public-key operation,
// and which of them vouches for the request would be ambiguous.
func pick(members []httpsig.Member, sigs map[string][]byte) (httpsig.Member, []byte, bool) {
	for _, m := range members {
		if s, ok := sigs[m.Label]; ok && m.Label == httpsig.Label {
			return m, s, true
		}
	}
	if len(members) == 1 && len(sigs) == 1 {
		if s, ok := sigs[members[0].Label]; ok {
			return members[0], s, true
		}
	}
	return httpsig.Member{}, nil, false
}

// covered checks that the signature binds the request's method, path and
// body: @method, @path and digest or content-digest must all be covered.
func covered(components []string) error {
	var method, path, digest bool
	for _, c := range components {
		switch strings.ToLower(c) {
		case "@method":
			method = true
		case "@path":
			path = true
		case "digest", "content-digest":
			digest = true
		}
	}
	if !method || !path || !digest {
		return fmt.Errorf("%w: covers %s", ErrWeakCoverage, strings.Join(components, " "))
	}
	return nil
}

// joined returns the values of header name as one dictionary, as RFC 8941
// combines field lines, or "" when there is none.
func joined(h http.Header, name string) string {
	return strings.TrimSpace(strings.Join(h.Values(name), ", "))
}
