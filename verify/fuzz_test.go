package verify_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/elliptic"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/upvest-relay/upvest-relay/verify"
)

// fuzzDelivery is what FuzzVerify may mutate in a signed request.
type fuzzDelivery struct {
	sigInput, sig, contentType, digest string
	body                               []byte
}

// FuzzVerify feeds Verify mutations of validly signed requests (their
// Signature-Input, Signature, a covered header, the covered digest and the
// body). Verify must never panic, and must never accept a request whose
// body or covered headers differ from what was signed.
func FuzzVerify(f *testing.F) {
	key := ecKey(f, elliptic.P256())
	v := newVerifier(f, staticKeys(f, map[string]crypto.PublicKey{"k1": &key.PublicKey}))

	var signed [2]fuzzDelivery // draft-06, draft-15
	var fixed [2]http.Header   // the other covered headers, left alone
	for i, draft15 := range []bool{false, true} {
		r := upvestRequest(f, delivery{key: key, kid: "k1", body: testBody, draft15: draft15})
		signed[i] = fuzzDelivery{
			sigInput:    r.Header.Get("Signature-Input"),
			sig:         r.Header.Get("Signature"),
			contentType: r.Header.Get("Content-Type"),
			digest:      r.Header.Get(digestHeader(draft15)),
			body:        testBody,
		}
		fixed[i] = r.Header.Clone()
		for _, h := range []string{"Signature-Input", "Signature", "Content-Type", digestHeader(draft15)} {
			fixed[i].Del(h)
		}
	}
	for i, draft15 := range []bool{false, true} {
		s := signed[i]
		f.Add(draft15, s.sigInput, s.sig, s.contentType, s.digest, s.body)
		f.Add(draft15, s.sigInput, s.sig, "text/plain", s.digest, s.body)
		f.Add(draft15, s.sigInput, s.sig, s.contentType, s.digest, append(bytes.Clone(s.body), ' '))
		f.Add(draft15, s.sigInput, s.sig, s.contentType, s.digest, []byte{})
		f.Add(draft15, strings.Replace(s.sigInput, "sig1=", "sig2=", 1), s.sig, s.contentType, s.digest, s.body)
		f.Add(draft15, strings.Replace(s.sigInput, `"@path" `, "", 1), s.sig, s.contentType, s.digest, s.body)
		f.Add(draft15, s.sigInput+`, sig2=("@method");created=1`, s.sig+", sig2=:AAAA:", s.contentType, s.digest, s.body)
		f.Add(draft15, s.sigInput, s.sig[:len(s.sig)/2], s.contentType, s.digest, s.body)
		f.Add(draft15, s.sigInput, s.sig, s.contentType, "SHA-512=AAAA, sha-256=:AAAA:", s.body)
		f.Add(draft15, "", "", "", "", []byte(nil))
		f.Add(draft15, `sig1=("\"" "a");keyid=k;created=-9999999999999999;expires=1.5`, "sig1=:=:", "\x00", "=", []byte("{"))
	}

	f.Fuzz(func(t *testing.T, draft15 bool, sigInput, sig, contentType, digest string, body []byte) {
		i := 0
		if draft15 {
			i = 1
		}
		r := httptest.NewRequest(http.MethodPost, "https://relay.example/webhooks/upvest", bytes.NewReader(body))
		r.Header = fixed[i].Clone()
		r.Header["Signature-Input"] = []string{sigInput}
		r.Header["Signature"] = []string{sig}
		r.Header["Content-Type"] = []string{contentType}
		r.Header[digestHeader(draft15)] = []string{digest}

		err := v.Verify(context.Background(), r, body)
		// The split API must agree with Verify on every input.
		var split error
		if h, herr := v.CheckHead(context.Background(), r); herr != nil {
			split = herr
		} else {
			d := h.Body()
			_, _ = d.Write(body)
			if split = d.Check(); split == nil {
				split = h.VerifySignature()
			}
		}
		if (err == nil) != (split == nil) || verify.Reason(err) != verify.Reason(split) {
			t.Fatalf("Verify = %v, split API = %v", err, split)
		}
		if err != nil {
			return
		}
		// Accepted: what the signature covers must be what was signed.
		// (Header values are compared trimmed, as the signature base trims them.)
		s := signed[i]
		if !bytes.Equal(body, s.body) {
			t.Errorf("accepted a mutated body %q", body)
		}
		if strings.TrimSpace(contentType) != s.contentType {
			t.Errorf("accepted a mutated Content-Type %q", contentType)
		}
		if strings.TrimSpace(digest) != s.digest {
			t.Errorf("accepted a mutated digest %q", digest)
		}
	})
}

func digestHeader(draft15 bool) string {
	if draft15 {
		return "Content-Digest"
	}
	return "Digest"
}
