package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/stripepay/stripetest"
)

// TestFulfilmentBurst is the fulfilment benchmark of docs/performance.md, not part of `make test`:
// SAMPLERO_BENCH_BURST=N runs it. N pending orders are created, then N distinct signed
// checkout.session.completed events arrive at once (32 senders), a tenth of them delivered twice.
// It reports the time until every order is fulfilled and its e-mail is in the outbox, and counts
// duplicates (a second license or a second e-mail for an order), which must be 0.
func TestFulfilmentBurst(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SAMPLERO_BENCH_BURST"))
	if n <= 0 {
		t.Skip("set SAMPLERO_BENCH_BURST=1000 to run the fulfilment burst benchmark")
	}
	d := commerceDev(t, "SAMPLERO_RATE_LIMITS=off")
	d.sellable(t, "burst-synth", "plugin", 1000, 1)
	base := "http://" + d.http

	type order struct{ id, email string }
	orders := make([]order, n)
	for i := range orders {
		email := fmt.Sprintf("burst-%05d@example.com", i)
		o := d.admin(t, "POST", "/v1/admin/orders", map[string]any{"items": []map[string]any{{"product": "burst-synth", "quantity": 1}}, "email": email}, 201)
		id, _ := orderOf(t, o)
		orders[i] = order{id, email}
	}
	events := make(chan int, 2*n)
	for i := 0; i < n; i++ {
		events <- i
	}
	for i := 0; i < n; i += 10 {
		events <- i // redelivered
	}
	close(events)

	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range events {
				o := orders[i]
				payload, header := stripetest.SignedEvent(nil, e2eStripeSecret, "evt_burst_"+strconv.Itoa(i), "checkout.session.completed",
					sessionCompleted(o.id, o.email, "pi_burst_"+strconv.Itoa(i), 1000), "2023-10-16")
				req, _ := http.NewRequest("POST", base+"/v1/webhooks/stripe", bytes.NewReader(payload))
				req.Header.Set("Stripe-Signature", header)
				res, err := http.DefaultClient.Do(req)
				if err != nil || res.StatusCode != 200 {
					failed.Add(1)
				}
				if res != nil {
					res.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	accepted := time.Since(start)

	outbox := filepath.Join(d.data, "outbox")
	deadline := time.Now().Add(30 * time.Minute)
	var mails int
	for time.Now().Before(deadline) {
		entries, _ := os.ReadDir(outbox)
		mails = 0
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), ".") {
				mails++
			}
		}
		if mails >= n {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	emailed := time.Since(start)
	fulfilled := 0
	for time.Now().Before(deadline) {
		fulfilled = 0
		cursor := ""
		for {
			res := d.admin(t, "GET", "/v1/admin/orders?status=fulfilled&limit=200&cursor="+cursor, nil, 200)
			items, _ := res["items"].([]any)
			fulfilled += len(items)
			next, _ := res["next_cursor"].(string)
			if next == "" {
				break
			}
			cursor = next
		}
		if fulfilled >= n {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	done := time.Since(start)

	// Duplicates: any recipient with two e-mails, any buyer with two licenses.
	perRcpt := map[string]int{}
	entries, _ := os.ReadDir(outbox)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(outbox, e.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "To:") {
				perRcpt[strings.TrimSpace(strings.TrimPrefix(line, "To:"))]++
				break
			}
		}
	}
	dupMails := 0
	for _, c := range perRcpt {
		if c > 1 {
			dupMails += c - 1
		}
	}
	licenses := 0
	cursor := ""
	for {
		res := d.admin(t, "GET", "/v1/admin/licenses?product=burst-synth&limit=200&cursor="+cursor, nil, 200)
		items, _ := res["items"].([]any)
		licenses += len(items)
		next, _ := res["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	t.Logf("burst of %d paid events (+%d redelivered), 32 senders: webhooks answered in %v (%d failed); all e-mailed after %v; all fulfilled after %v (%.1f orders/s); %d e-mails, %d licenses, %d duplicate e-mails, %d duplicate licenses",
		n, (n+9)/10, accepted.Round(time.Millisecond), failed.Load(), emailed.Round(time.Millisecond), done.Round(time.Millisecond),
		float64(n)/done.Seconds(), mails, licenses, dupMails, licenses-n)
	if failed.Load() != 0 || mails != n || fulfilled != n || licenses != n || dupMails != 0 {
		t.Fatal("the burst was not fulfilled exactly once per order")
	}
}
