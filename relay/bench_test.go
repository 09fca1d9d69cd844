package relay_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkHandler sends packages of n events through the whole handler
// (request id, body read, verification, split, headers, async publish,
// waiting for every PubAck) into a real embedded JetStream.
func BenchmarkHandler(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			f := newFixture(b, acceptAll)
			run := 0
			b.ReportAllocs()
			for b.Loop() {
				run++
				body := benchBody(n, run)
				rec := httptest.NewRecorder()
				f.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, webhookPath, bytes.NewReader(body)))
				if rec.Code != http.StatusOK {
					b.Fatalf("status = %d (%s)", rec.Code, rec.Body)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// benchBody is a package of n realistic events with ids unique to run.
func benchBody(n, run int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"payload":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"%08d-0000-4000-8000-%012d","created_at":"2024-05-01T10:00:00.123456Z","type":"ORDER.FILLED","object":{"id":"0f0e0d0c-0b0a-4090-8070-605040302010","user_id":"a1b2c3d4-0000-4000-8000-000000000001","status":"FILLED","side":"BUY","quantity":"1.5","price":"101.25","currency":"EUR"},"webhook_id":"b1f0c9a6-9d38-4a4f-bc44-0c8a3b7f0d11"}`, run, i)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}
