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
	keys     KeySource
	maxAge   time.Duration
	skew     time.Duration
	now      func() time.Time
	verified verifiedCache
	prints   keyPrints
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
//   - ErrMalformed: either cannot be parsed, no Signature-Input member has
//     a Signature, or the chosen member lacks keyid or created;
//   - ErrFuture, ErrStale: created is more than the clock skew ahead, or
//     older than the max age, or expires lies more than the skew behind;
//   - ErrMissingComponent: a covered component is absent from r;
//   - ErrNoDigest, ErrDigestMismatch: body is not empty and no digest or
//     content-digest is covered, or the covered digest does not match body;
//   - ErrUnknownKey, ErrKeysUnavailable: from the key source, by keyid;
//   - ErrBadSignature: the signature verifies over neither the unquoted
//     (Upvest draft-06) nor the quoted (RFC 9421, Upvest draft-15) base.
//
// plus ErrWeakCoverage (@method or @path not covered). Verify is CheckHead,
// then the body digest, then VerifySignature; see CheckHead for which member
// is used. Verify never logs; errors carry no signature or body bytes.
func (v *Verifier) Verify(ctx context.Context, r *http.Request, body []byte) error {
	h, err := v.CheckHead(ctx, r)
	if err != nil {
		return err
	}
	d := h.Body()
	_, _ = d.Write(body)
	if err := d.Check(); err != nil {
		return err
	}
	return h.VerifySignature()
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

// pick chooses the member to verify: sig1 if it has a signature, else the
// only member that has one; several candidates without sig1 are ambiguous.
func pick(members []httpsig.Member, sigs map[string][]byte) (httpsig.Member, []byte, error) {
	var found []httpsig.Member
	for _, m := range members {
		if _, ok := sigs[m.Label]; ok {
			if m.Label == httpsig.Label {
				return m, sigs[m.Label], nil
			}
			found = append(found, m)
		}
	}
	switch len(found) {
	case 0:
		return httpsig.Member{}, nil, fmt.Errorf("%w: no Signature-Input member has a Signature", ErrMalformed)
	case 1:
		return found[0], sigs[found[0].Label], nil
	}
	return httpsig.Member{}, nil, fmt.Errorf("%w: several signatures and none labelled %s", ErrMalformed, httpsig.Label)
}

// joined returns the values of header name as one dictionary, as RFC 8941
// combines field lines, or "" when there is none.
func joined(h http.Header, name string) string {
	return strings.TrimSpace(strings.Join(h.Values(name), ", "))
}
