package verify

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strings"
	"time"

	"github.com/upvest-relay/upvest-relay/httpsig"
)

// Head is a request head that passed every check needing neither the body
// nor a public-key operation (see CheckHead). It is safe for concurrent use.
type Head struct {
	v      *Verifier
	pub    crypto.PublicKey
	sig    []byte
	bases  [2][]byte // preferred style first
	kid    string
	wants  []digestWant
	header string
	// created is the signature's creation time, for how long a
	// verification is remembered.
	created time.Time
}

type digestWant struct {
	alg  string // "sha-256" or "sha-512"
	want []byte
}

// CheckHead runs every check that needs neither the body nor a public-key
// operation: parse Signature-Input/Signature, strict covered components,
// freshness, key lookup by keyid (with the key source's refetch), building
// the signature base(s). Errors wrap exactly one of the package's sentinels.
//
// Member choice: the member labelled sig1 when it has a signature;
// otherwise exactly one member may carry a signature, and several without
// sig1 are refused (ErrMalformed) rather than picked by position.
func (v *Verifier) CheckHead(ctx context.Context, r *http.Request) (*Head, error) {
	if r == nil || r.URL == nil {
		return nil, fmt.Errorf("%w: no request", ErrMalformed)
	}
	input, sigs := joined(r.Header, "Signature-Input"), joined(r.Header, "Signature")
	if input == "" || sigs == "" {
		return nil, ErrNoSignature
	}
	// Both parsers refuse a label given twice (RFC 8941 would let the
	// last one win).
	members, err := httpsig.ParseSignatureInput(input)
	if err != nil {
		return nil, fmt.Errorf("%w: Signature-Input: %w", ErrMalformed, err)
	}
	sigByLabel, err := httpsig.ParseSignature(sigs)
	if err != nil {
		return nil, fmt.Errorf("%w: Signature: %w", ErrMalformed, err)
	}
	m, sig, err := pick(members, sigByLabel)
	if err != nil {
		return nil, err
	}
	switch {
	case len(sig) == 0:
		return nil, fmt.Errorf("%w: empty signature", ErrMalformed)
	case m.Params.KeyID == "":
		return nil, fmt.Errorf("%w: no keyid", ErrMalformed)
	case m.Params.Created == 0:
		return nil, fmt.Errorf("%w: no created", ErrMalformed)
	case m.Params.Expires != 0 && m.Params.Expires < m.Params.Created:
		return nil, fmt.Errorf("%w: expires before created", ErrMalformed)
	}
	header, err := coverage(m.Components)
	if err != nil {
		return nil, err
	}
	if err := v.fresh(m.Params); err != nil {
		return nil, err
	}
	h := &Head{v: v, sig: sig, kid: m.Params.KeyID, header: header, created: time.Unix(m.Params.Created, 0)}
	styles := [2]httpsig.Style{httpsig.Unquoted, httpsig.Quoted}
	if strings.TrimSpace(r.Header.Get("Upvest-Signature-Version")) == "15" {
		styles[0], styles[1] = styles[1], styles[0]
	}
	for i, s := range styles {
		if h.bases[i], err = httpsig.Base(r, m.Components, m.Raw, s); err != nil {
			if errors.Is(err, httpsig.ErrMissingComponent) {
				return nil, fmt.Errorf("%w: %w", ErrMissingComponent, err)
			}
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
	}
	if h.wants, err = parseDigest(header, strings.Join(r.Header.Values(header), ",")); err != nil {
		return nil, err
	}
	h.pub, err = v.keys.Key(ctx, m.Params.KeyID)
	if err != nil {
		if errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrKeysUnavailable) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
	}
	return h, nil
}

// VerifySignature performs the public-key operation (ECDSA SHA-512 /
// Ed25519) over the base(s), the preferred style first: nil or an error
// wrapping ErrBadSignature. Safe to call from another goroutine than the one
// reading the body. A head identical to one that verified before (same key
// id, signature and bases: a replay) is not verified again while its
// signature is fresh; public-key work is spent only on what differs.
func (h *Head) VerifySignature() error {
	key, now := cacheKey(h), h.v.now()
	if h.v.verified.has(key, now) {
		return nil
	}
	for _, b := range h.bases {
		if httpsig.VerifyBase(h.pub, b, h.sig) == nil {
			h.v.verified.add(key, h.created.Add(h.v.maxAge+h.v.skew))
			return nil
		}
	}
	return fmt.Errorf("%w (keyid %q)", ErrBadSignature, short(h.kid))
}

// Body returns a fresh hash sink for the covered digest: write the body
// bytes to it as they arrive, then call Check.
func (h *Head) Body() *BodyDigest {
	d := &BodyDigest{wants: h.wants, header: h.header}
	for _, w := range h.wants {
		switch w.alg {
		case "sha-256":
			if d.h256 == nil {
				d.h256 = sha256.New()
			}
		case "sha-512":
			if d.h512 == nil {
				d.h512 = sha512.New()
			}
		}
	}
	return d
}

// BodyDigest hashes a body for comparison with the signed digest. It is not
// safe for concurrent use.
type BodyDigest struct {
	h256, h512 hash.Hash
	wants      []digestWant
	header     string
}

// Write adds p to the hashes; it never fails and does not allocate.
func (d *BodyDigest) Write(p []byte) (int, error) {
	if d.h256 != nil {
		d.h256.Write(p)
	}
	if d.h512 != nil {
		d.h512.Write(p)
	}
	return len(p), nil
}

// Check compares the sum of what was written with every signed digest value
// of a supported algorithm: nil, or an error wrapping ErrDigestMismatch
// (constant-time compare).
func (d *BodyDigest) Check() error {
	var buf [sha512.Size]byte
	for _, w := range d.wants {
		var got []byte
		if w.alg == "sha-256" {
			got = d.h256.Sum(buf[:0])
		} else {
			got = d.h512.Sum(buf[:0])
		}
		if subtle.ConstantTimeCompare(got, w.want) != 1 {
			return fmt.Errorf("%w: %s", ErrDigestMismatch, d.header)
		}
	}
	return nil
}

// coverage checks that the covered components include @method, @path and a
// body digest, and returns the digest header to check: Content-Digest when
// covered, else Digest.
func coverage(components []string) (string, error) {
	var method, path bool
	header := ""
	for _, c := range components {
		switch strings.ToLower(c) {
		case "@method":
			method = true
		case "@path":
			path = true
		case "content-digest":
			header = "Content-Digest"
		case "digest":
			if header == "" {
				header = "Digest"
			}
		}
	}
	switch {
	case !method || !path:
		return "", fmt.Errorf("%w: the signature must cover @method and @path", ErrWeakCoverage)
	case header == "":
		return "", fmt.Errorf("%w: the signature covers neither digest nor content-digest", ErrNoDigest)
	}
	return header, nil
}

// parseDigest reads the supported digests of a covered digest header value;
// at least one must be present.
func parseDigest(header, v string) ([]digestWant, error) {
	var out []digestWant
	if header == "Content-Digest" {
		d, err := httpsig.ParseSignature(v) // a dictionary of byte sequences
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrNoDigest, header, err)
		}
		for _, alg := range []string{"sha-256", "sha-512"} {
			if b, ok := d[alg]; ok {
				out = append(out, digestWant{alg, b})
			}
		}
	} else {
		for part := range strings.SplitSeq(v, ",") {
			alg, enc, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok {
				return nil, fmt.Errorf("%w: %s: malformed", ErrNoDigest, header)
			}
			alg = strings.ToLower(alg)
			if alg != "sha-256" && alg != "sha-512" {
				continue
			}
			b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrNoDigest, header, err)
			}
			out = append(out, digestWant{alg, b})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s has no SHA-256 or SHA-512 value", ErrNoDigest, header)
	}
	return out, nil
}
