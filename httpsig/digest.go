package httpsig

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Digest returns the legacy Digest header value Upvest's draft-06 signer
// sends: "SHA-256=<base64>".
func Digest(body []byte) string {
	sum := sha256.Sum256(body)
	return "SHA-256=" + base64.StdEncoding.EncodeToString(sum[:])
}

// ContentDigest returns the RFC 9530 Content-Digest header value Upvest's
// draft-15 signer sends: "sha-512=:<base64>:".
func ContentDigest(body []byte) string {
	sum := sha512.Sum512(body)
	return "sha-512=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
}

// CheckDigest verifies body against every digest header present:
// Content-Digest and Digest alike. Every digest of a supported algorithm
// (SHA-256, SHA-512) must match, and at least one must be present. Checking
// all of them, rather than the first found, means an added, unsigned digest
// header cannot stand in for the signed one; callers must still make sure
// that a digest header is covered by the signature.
// It returns ErrNoDigest, ErrDigestMismatch or ErrSyntax.
func CheckDigest(h http.Header, body []byte) error {
	checked := 0
	if v := h.Values("Content-Digest"); len(v) > 0 {
		if err := checkContentDigest(strings.Join(v, ","), body); err != nil && !errors.Is(err, ErrNoDigest) {
			return err
		} else if err == nil {
			checked++
		}
	}
	if v := h.Values("Digest"); len(v) > 0 {
		if err := checkLegacyDigest(strings.Join(v, ","), body); err != nil && !errors.Is(err, ErrNoDigest) {
			return err
		} else if err == nil {
			checked++
		}
	}
	if checked == 0 {
		return ErrNoDigest
	}
	return nil
}

func checkContentDigest(v string, body []byte) error {
	d, err := ParseSignature(v) // same shape: a dictionary of byte sequences
	if err != nil {
		return fmt.Errorf("content-digest: %w", err)
	}
	checked := 0
	for alg, got := range d {
		want, ok := sum(alg, body)
		if !ok {
			continue
		}
		if subtle.ConstantTimeCompare(got, want) != 1 {
			return ErrDigestMismatch
		}
		checked++
	}
	if checked == 0 {
		return ErrNoDigest
	}
	return nil
}

func checkLegacyDigest(v string, body []byte) error {
	checked := 0
	for _, part := range strings.Split(v, ",") {
		alg, enc, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("digest: %w: %q has no '='", ErrSyntax, alg)
		}
		want, ok := sum(strings.ToLower(alg), body)
		if !ok {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
		if err != nil {
			return fmt.Errorf("digest: %w: %v", ErrSyntax, err)
		}
		if subtle.ConstantTimeCompare(got, want) != 1 {
			return ErrDigestMismatch
		}
		checked++
	}
	if checked == 0 {
		return ErrNoDigest
	}
	return nil
}

func sum(alg string, body []byte) ([]byte, bool) {
	switch alg {
	case "sha-256":
		s := sha256.Sum256(body)
		return s[:], true
	case "sha-512":
		s := sha512.Sum512(body)
		return s[:], true
	}
	return nil, false
}
