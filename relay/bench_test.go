package relay_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/upvest-relay/upvest-relay/relay"
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
				body := relay.BenchPackage(n, run)
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
