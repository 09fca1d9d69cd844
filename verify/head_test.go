package verify_test

import (
	"context"
	"crypto"
	"crypto/elliptic"
	"testing"
)

func BenchmarkCheckHead(b *testing.B) {
	key := ecKey(b, elliptic.P521())
	v := newVerifier(b, staticKeys(b, map[string]crypto.PublicKey{"upvest": &key.PublicKey}))
	r := upvestRequest(b, delivery{key: key, kid: "upvest", body: testBody})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.CheckHead(context.Background(), r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifySignature is the public-key operation for a head seen
// for the first time (a fresh Verifier each round, outside the timer).
func BenchmarkVerifySignature(b *testing.B) {
	key := ecKey(b, elliptic.P521())
	keys := staticKeys(b, map[string]crypto.PublicKey{"upvest": &key.PublicKey})
	r := upvestRequest(b, delivery{key: key, kid: "upvest", body: testBody})
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		h, err := newVerifier(b, keys).CheckHead(context.Background(), r)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := h.VerifySignature(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifySignatureReplay is the same head again: a replay costs a
// hash, not a public-key operation.
func BenchmarkVerifySignatureReplay(b *testing.B) {
	key := ecKey(b, elliptic.P521())
	v := newVerifier(b, staticKeys(b, map[string]crypto.PublicKey{"upvest": &key.PublicKey}))
	h, err := v.CheckHead(context.Background(), upvestRequest(b, delivery{key: key, kid: "upvest", body: testBody}))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := h.VerifySignature(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBodyDigest(b *testing.B) {
	key := ecKey(b, elliptic.P521())
	body := make([]byte, 1<<20)
	v := newVerifier(b, staticKeys(b, map[string]crypto.PublicKey{"upvest": &key.PublicKey}))
	h, err := v.CheckHead(context.Background(), upvestRequest(b, delivery{key: key, kid: "upvest", body: body, draft15: true}))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		d := h.Body()
		for i := 0; i < len(body); i += 32 << 10 {
			_, _ = d.Write(body[i : i+32<<10])
		}
		if err := d.Check(); err != nil {
			b.Fatal(err)
		}
	}
}
