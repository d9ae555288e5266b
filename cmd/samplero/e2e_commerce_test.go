package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/stripepay/stripetest"
)

// The secrets the commerce end-to-end tests give dev.
const (
	e2eStripeSecret  = "whsec_e2e_0123456789abcdef0123456789abcdef"
	e2eGenericSecret = "generic-e2e-0123456789abcdef0123456789"
)

var (
	licenseKeyRe   = regexp.MustCompile(`\b(?:VST|DIG|LIC)-[0-9A-Z]{5}(?:-[0-9A-Z]{5}){3,}\b`)
	downloadLinkRe = regexp.MustCompile(`https?://[^\s"<>]+/orders/[^\s"<>/]+/download/[^\s"<>?]+\?[^\s"<>]+`)
)

// commerceDev starts dev with Stripe (stripe-mock), the generic webhook and an operator address.
func commerceDev(t *testing.T, extra ...string) *devProcess {
	t.Helper()
	mock := stripetest.StartMock(t)
	env := append([]string{
		"STRIPE_WEBHOOK_SECRET=" + e2eStripeSecret,
		"STRIPE_SECRET_KEY=sk_test_123",
		"STRIPE_API_BASE=" + mock,
		"SAMPLERO_WEBHOOK_SECRET=" + e2eGenericSecret,
		"SAMPLERO_OPERATOR_EMAIL=ops@vendor.example",
		"SAMPLERO_VENDOR_NAME=E2E Audio",
	}, extra...)
	d := newDev(t, env...)
	d.start(t)
	return d
}

// httpJSON sends a JSON request (no auth) and returns the status and decoded body.
func httpJSON(t *testing.T, method, url string, body any, header map[string]string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if b, ok := body.([]byte); ok {
		rd = bytes.NewReader(b)
	} else if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	if out == nil {
		out = map[string]any{"_raw": string(raw)}
	}
	return res.StatusCode, out
}

// sellable creates a product through the protocol's admin call, gives it a published version with
// an uploaded asset, and returns the asset's bytes.
func (d *devProcess) sellable(t *testing.T, slug, typ string, priceCents int, maxActivations int) []byte {
	t.Helper()
	body := map[string]any{"slug": slug, "name": "E2E " + slug, "type": typ, "price_cents": priceCents, "currency": "USD"}
	if typ == "plugin" {
		body["policy"] = map[string]any{"max_activations": maxActivations, "first_activation": "instant", "heartbeat_interval_s": 3600, "grace_period_s": 7200}
	}
	d.admin(t, "POST", "/v1/admin/products", body, 201)
	platform := "linux"
	if typ == "sample_pack" {
		platform = "all"
	}
	v := d.admin(t, "POST", "/v1/admin/products/"+slug+"/versions", map[string]any{
		"version": "1.2.0", "platform": platform, "release_notes": "first release",
	}, 201)
	asset := []byte(strings.Repeat(slug+" asset bytes\n", 1000))
	req, _ := http.NewRequest("PUT", "http://"+d.http+"/v1/admin/products/"+slug+"/versions/"+v["id"].(string)+"/asset?filename="+slug+"-1.2.0.zip", bytes.NewReader(asset))
	req.Header.Set("Authorization", "Bearer "+d.adminTok)
	req.Header.Set("Content-Type", "application/octet-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("asset upload: %d %s", res.StatusCode, raw)
	}
	// A version is published once its file is there.
	d.admin(t, "PATCH", "/v1/admin/products/"+slug+"/versions/"+v["id"].(string), map[string]any{"published": true}, 200)
	return asset
}

// checkout creates a pending order through the public checkout call.
func (d *devProcess) checkout(t *testing.T, email string, items []map[string]any, coupon string) (int, map[string]any) {
	t.Helper()
	body := map[string]any{"items": items, "email": email}
	if coupon != "" {
		body["coupon"] = coupon
	}
	return httpJSON(t, "POST", "http://"+d.http+"/v1/checkout", body, nil)
}

func orderOf(t *testing.T, res map[string]any) (id string, total int) {
	t.Helper()
	o, ok := res["order"].(map[string]any)
	if !ok {
		t.Fatalf("no order in %v", res)
	}
	return o["id"].(string), int(o["total_cents"].(float64))
}

// stripeEvent posts a signed Stripe event and returns the status and body.
func (d *devProcess) stripeEvent(t *testing.T, id, typ string, object map[string]any) (int, map[string]any) {
	t.Helper()
	payload, header := stripetest.SignedEvent(t, e2eStripeSecret, id, typ, object, "2023-10-16")
	return httpJSON(t, "POST", "http://"+d.http+"/v1/webhooks/stripe", payload, map[string]string{"Stripe-Signature": header})
}

func sessionCompleted(orderID, email, paymentIntent string, amount int) map[string]any {
	return map[string]any{
		"id": "cs_test_" + orderID, "object": "checkout.session", "mode": "payment",
		"payment_status": "paid", "status": "complete",
		"amount_total": amount, "amount_subtotal": amount, "currency": "usd",
		"total_details":    map[string]any{"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
		"customer_details": map[string]any{"email": email},
		"payment_intent":   paymentIntent,
		"metadata":         map[string]any{"samplero_order_id": orderID},
	}
}

// outboxTo lists the outbox messages addressed to rcpt.
func outboxTo(t *testing.T, d *devProcess, rcpt string) []string {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(d.data, "outbox"))
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d.data, "outbox", e.Name()))
		if err == nil && (strings.Contains(string(b), "To: <"+rcpt+">") || strings.Contains(string(b), "To: "+rcpt)) {
			out = append(out, string(b))
		}
	}
	return out
}

// deliveries keeps the order delivery e-mails of a list (a buyer also gets, say, a new-device
// e-mail when they activate).
func deliveries(mails []string) []string {
	var out []string
	for _, m := range mails {
		if strings.Contains(m, "X-Samplero-Message-Id: delivery-") {
			out = append(out, m)
		}
	}
	return out
}

// licensesOf lists the licenses the admin API shows for an owner.
func (d *devProcess) licensesOf(t *testing.T, email string) []any {
	t.Helper()
	res := d.admin(t, "GET", "/v1/admin/licenses?owner_email="+email, nil, 200)
	items, _ := res["items"].([]any)
	return items
}

// ordersOf lists the orders the admin API shows for a customer.
func (d *devProcess) ordersOf(t *testing.T, email string) []any {
	t.Helper()
	res := d.admin(t, "GET", "/v1/admin/orders?email="+email, nil, 200)
	items, _ := res["items"].([]any)
	return items
}

// waitOrderStatus polls the admin API until the order reaches status.
func (d *devProcess) waitOrderStatus(t *testing.T, id, status string, wait time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(wait)
	var last map[string]any
	for time.Now().Before(deadline) {
		last = d.admin(t, "GET", "/v1/admin/orders/"+id, nil, 200)
		if last["status"] == status {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("order %s did not reach %s within %v: %v", id, status, wait, last)
	return nil
}

// TestE2ECommerce sells through dev: a signed checkout.session.completed delivers keys that
// activate and links that download; the same event again, and a Payment Link event 50 times at
// once, fulfil exactly once; a refund revokes; the last redemption of a coupon goes to exactly one
// of 20 parallel checkouts; the generic webhook pays an order.
func TestE2ECommerce(t *testing.T) {
	start := time.Now()
	d := commerceDev(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	base := "http://" + d.http

	synthAsset := d.sellable(t, "e2e-synth", "plugin", 4900, 2)
	packAsset := d.sellable(t, "e2e-pack", "sample_pack", 1900, 0)

	// The public catalog shows them without storage keys.
	st, cat := httpJSON(t, "GET", base+"/v1/catalog/products/e2e-synth/versions/latest?platform=linux", nil, nil)
	if st != 200 || strings.Contains(fmt.Sprint(cat), "storage_key") || strings.Contains(fmt.Sprint(cat), "products/") {
		t.Fatalf("latest version: %d %v", st, cat)
	}

	// 1. Checkout → signed checkout.session.completed → the delivery e-mail with a key that activates.
	buyer := "buyer-one@example.com"
	st, res := d.checkout(t, buyer, []map[string]any{{"product": "e2e-synth", "quantity": 1}, {"product": "e2e-pack", "quantity": 1}}, "")
	if st != 201 || res["checkout_url"] == nil || res["checkout_url"] == "" {
		t.Fatalf("checkout: %d %v", st, res)
	}
	orderID, total := orderOf(t, res)
	if total != 4900+1900 {
		t.Fatalf("order total %d, want %d", total, 4900+1900)
	}
	pi := "pi_e2e_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	evt := sessionCompleted(orderID, buyer, pi, total)
	if st, body := d.stripeEvent(t, "evt_e2e_paid_1", "checkout.session.completed", evt); st != 200 || body["duplicate"] == true {
		t.Fatalf("webhook: %d %v", st, body)
	}
	mail := waitForMail(t, filepath.Join(d.data, "outbox"), buyer, 60*time.Second)
	text := mailText(t, mail)
	key := licenseKeyRe.FindString(text)
	links := downloadLinkRe.FindAllString(text, -1)
	if key == "" || len(links) < 2 {
		t.Fatalf("the delivery e-mail lacks a key or the two download links:\n%s", text)
	}
	d.waitOrderStatus(t, orderID, "fulfilled", 30*time.Second)
	c := d.client(t, "e2e-synth", "e2e-commerce-device-1")
	act, err := c.Activate(ctx, key)
	if err != nil || act.ActivationID == "" {
		t.Fatalf("activate with the delivered key: %+v %v", act, err)
	}
	if v, err := c.Validate(ctx); err != nil || !v.Valid || v.TrustLevel != 4 {
		t.Fatalf("validate: %+v %v", v, err)
	}
	// The e-mail's links download the uploaded bytes (a redirect to a signed, expiring link).
	for _, link := range links {
		want := synthAsset
		if strings.Contains(link, "e2e-pack") {
			want = packAsset
		}
		got := download(t, link)
		if !bytes.Equal(got, want) {
			t.Fatalf("download %s: %d bytes, want %d", link, len(got), len(want))
		}
	}
	t.Logf("flow 1: paid → e-mail with key %s… and %d links → activated (trust 4) → downloaded; %v", key[:9], len(links), time.Since(start).Round(time.Millisecond))

	// 2. The same event again: acknowledged, nothing new.
	if st, body := d.stripeEvent(t, "evt_e2e_paid_1", "checkout.session.completed", evt); st != 200 || body["duplicate"] != true {
		t.Fatalf("redelivery: %d %v", st, body)
	}

	// 3. A Payment Link event delivered 50 times at once: one order, one license, one e-mail.
	linkBuyer := "link-buyer@example.com"
	linkEvt := map[string]any{
		"id": "cs_test_link_1", "object": "checkout.session", "mode": "payment", "payment_status": "paid", "status": "complete",
		"amount_total": 4900, "currency": "usd", "total_details": map[string]any{"amount_discount": 0},
		"customer_details": map[string]any{"email": linkBuyer}, "payment_intent": "pi_e2e_link_1",
		"metadata": map[string]any{"samplero_products": "e2e-synth:1"},
	}
	var wg sync.WaitGroup
	var fresh, dup, other atomic.Int32
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload, header := stripetest.SignedEvent(nil, e2eStripeSecret, "evt_e2e_link_1", "checkout.session.completed", linkEvt, "2024-06-20")
			req, _ := http.NewRequest("POST", base+"/v1/webhooks/stripe", bytes.NewReader(payload))
			req.Header.Set("Stripe-Signature", header)
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				other.Add(1)
				return
			}
			var b map[string]any
			_ = json.NewDecoder(res.Body).Decode(&b)
			res.Body.Close()
			switch {
			case res.StatusCode == 200 && b["duplicate"] == true:
				dup.Add(1)
			case res.StatusCode == 200:
				fresh.Add(1)
			default:
				other.Add(1)
			}
		}()
	}
	wg.Wait()
	waitForMail(t, filepath.Join(d.data, "outbox"), linkBuyer, 60*time.Second)
	time.Sleep(2 * time.Second) // a second e-mail, if any, would be on its way by now
	orders, lics, mails := d.ordersOf(t, linkBuyer), d.licensesOf(t, linkBuyer), deliveries(outboxTo(t, d, linkBuyer))
	t.Logf("flow 3: 50 concurrent deliveries of one Payment Link event: %d processed, %d duplicates, %d other; %d order(s), %d license(s), %d e-mail(s)",
		fresh.Load(), dup.Load(), other.Load(), len(orders), len(lics), len(mails))
	if fresh.Load() != 1 || dup.Load()+other.Load() != 49 || len(orders) != 1 || len(lics) != 1 || len(mails) != 1 {
		t.Fatal("the concurrent duplicates were not fulfilled exactly once")
	}
	// The first order still has exactly its one license and one e-mail.
	if n, m := len(d.licensesOf(t, buyer)), len(deliveries(outboxTo(t, d, buyer))); n != 1 || m != 1 {
		t.Fatalf("after the redelivery the first buyer has %d licenses and %d delivery e-mails, want 1 and 1", n, m)
	}

	// 4. A full refund revokes: the device gets a signed valid:false "revoked", a new activation is
	// refused with LICENSE_REVOKED, the download links stop working.
	refund := map[string]any{"id": "ch_e2e_1", "object": "charge", "amount": total, "amount_refunded": total, "refunded": true,
		"currency": "usd", "payment_intent": pi}
	if st, body := d.stripeEvent(t, "evt_e2e_refund_1", "charge.refunded", refund); st != 200 {
		t.Fatalf("refund webhook: %d %v", st, body)
	}
	d.waitOrderStatus(t, orderID, "refunded", 30*time.Second)
	if v, err := c.Validate(ctx); err != nil || v.Valid || v.Status != "revoked" {
		t.Fatalf("validate after the refund: %+v %v (want a signed valid:false revoked)", v, err)
	}
	_, err = d.client(t, "e2e-synth", "e2e-commerce-device-2").Activate(ctx, key)
	expectProblem(t, "activate after the refund", err, 403, "LICENSE_REVOKED")
	if code := downloadStatus(t, links[0]); code != 403 && code != 404 {
		t.Fatalf("a download link after the refund answered %d", code)
	}
	t.Log("flow 4: refund → validate valid:false revoked, activate 403 LICENSE_REVOKED, downloads refused")

	// 5. The last redemption of a coupon, taken by 20 parallel checkouts: exactly one gets it.
	d.admin(t, "POST", "/v1/admin/coupons", map[string]any{"code": "LASTONE", "kind": "full", "max_redemptions": 1, "notes": "support"}, 201)
	var won, exhausted, failed atomic.Int32
	var winner atomic.Value
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			email := fmt.Sprintf("coupon-%02d@example.com", i)
			body, _ := json.Marshal(map[string]any{"items": []map[string]any{{"product": "e2e-pack", "quantity": 1}}, "email": email, "coupon": "LASTONE"})
			res, err := http.Post(base+"/v1/checkout", "application/json", bytes.NewReader(body))
			if err != nil {
				failed.Add(1)
				return
			}
			raw, _ := io.ReadAll(res.Body)
			res.Body.Close()
			switch {
			case res.StatusCode == 201:
				won.Add(1)
				winner.Store(email)
			case bytes.Contains(raw, []byte("COUPON_EXHAUSTED")):
				exhausted.Add(1)
			default:
				failed.Add(1)
				t.Logf("checkout %d: %d %s", i, res.StatusCode, raw)
			}
		}(i)
	}
	wg.Wait()
	t.Logf("flow 5: 20 parallel checkouts for the last redemption: %d won, %d COUPON_EXHAUSTED, %d other", won.Load(), exhausted.Load(), failed.Load())
	if won.Load() != 1 || exhausted.Load() != 19 {
		t.Fatal("the last coupon redemption was not taken exactly once")
	}
	waitForMail(t, filepath.Join(d.data, "outbox"), winner.Load().(string), 60*time.Second)
	cpn := d.admin(t, "GET", "/v1/admin/coupons", nil, 200)
	if !strings.Contains(fmt.Sprint(cpn), "redemptions:1") {
		t.Fatalf("coupon after the race: %v", cpn)
	}

	// 6. The generic payment webhook pays an admin-created order.
	gb := "generic-buyer@example.com"
	ord := d.admin(t, "POST", "/v1/admin/orders", map[string]any{"items": []map[string]any{{"product": "e2e-synth", "quantity": 3}}, "email": gb}, 201)
	gid, _ := orderOf(t, ord)
	body, _ := json.Marshal(map[string]any{"event": "payment.succeeded", "data": map[string]any{"order_id": gid, "payment_id": "gen_1", "amount_cents": 3 * 4900, "currency": "USD"}})
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(e2eGenericSecret))
	mac.Write([]byte(ts + ".gen-evt-1." + string(body)))
	hdr := map[string]string{"X-Webhook-Timestamp": ts, "X-Webhook-Id": "gen-evt-1", "X-Webhook-Signature": "sha256=" + hex.EncodeToString(mac.Sum(nil))}
	if st, b := httpJSON(t, "POST", base+"/v1/webhooks/payment", body, hdr); st != 200 {
		t.Fatalf("generic webhook: %d %v", st, b)
	}
	hdr["X-Webhook-Signature"] = strings.Repeat("0", 64)
	if st, b := httpJSON(t, "POST", base+"/v1/webhooks/payment", body, hdr); st != 401 {
		t.Fatalf("generic webhook with a bad signature: %d %v", st, b)
	}
	d.waitOrderStatus(t, gid, "fulfilled", 60*time.Second)
	lics = d.licensesOf(t, gb)
	if len(lics) != 1 || int(lics[0].(map[string]any)["max_activations"].(float64)) != 6 {
		t.Fatalf("a quantity-3 line of a 2-seat plugin must give one license of 6 seats: %v", lics)
	}
	t.Logf("flow 6: generic webhook paid an admin order (bad signature refused); one license of 6 seats; all flows took %v", time.Since(start).Round(time.Millisecond))
}

// download follows a stable e-mail link to the signed link and returns the body.
func download(t *testing.T, link string) []byte {
	t.Helper()
	res, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", link, res.StatusCode, b)
	}
	if cd := res.Header.Get("Content-Disposition"); !strings.Contains(cd, "attachment") {
		t.Fatalf("GET %s: Content-Disposition %q", link, cd)
	}
	return b
}

func downloadStatus(t *testing.T, link string) int {
	t.Helper()
	res, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestE2EFulfilmentSurvivesKill: the buyer's mail relay refuses the delivery e-mail, so the order's
// licenses are issued while its e-mail waits for a retry; dev is killed (SIGKILL) then, and
// restarted on the same data directory. The order then completes exactly once: one license, one
// e-mail, status fulfilled.
func TestE2EFulfilmentSurvivesKill(t *testing.T) {
	relay := startRelay(t, 1)
	d := commerceDev(t, "SAMPLERO_SMTP_URL=smtp://127.0.0.1:"+strconv.Itoa(relay.port()))
	d.sellable(t, "e2e-kill", "plugin", 2500, 1)
	buyer := "kill-buyer@example.com"
	st, res := d.checkout(t, buyer, []map[string]any{{"product": "e2e-kill", "quantity": 1}}, "")
	if st != 201 {
		t.Fatalf("checkout: %d %v", st, res)
	}
	orderID, total := orderOf(t, res)
	if st, body := d.stripeEvent(t, "evt_e2e_kill_1", "checkout.session.completed", sessionCompleted(orderID, buyer, "pi_e2e_kill", total)); st != 200 {
		t.Fatalf("webhook: %d %v", st, body)
	}
	if !relay.waitFor(func() bool { return relay.refused >= 1 }, 60*time.Second) {
		t.Fatal("the delivery e-mail never reached the relay")
	}
	issued := d.licensesOf(t, buyer)
	if len(issued) != 1 || relay.count(buyer) != 0 {
		t.Fatalf("before the kill: %d licenses, %d e-mails delivered; want 1 and 0", len(issued), relay.count(buyer))
	}
	if o := d.admin(t, "GET", "/v1/admin/orders/"+orderID, nil, 200); o["status"] == "fulfilled" {
		t.Fatal("the order is fulfilled before its e-mail went out")
	}
	pids := d.temporalPids(t)
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.exited
	for _, pid := range pids {
		if !waitGone(pid, 5*time.Second) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			waitGone(pid, 5*time.Second)
		}
	}
	t.Logf("kill: dev killed with SIGKILL after the license was issued and %d delivery was refused", relay.refusedCount())

	d.start(t)
	if !relay.waitFor(func() bool { return relay.countLocked(buyer) >= 1 }, 90*time.Second) {
		t.Fatal("the delivery e-mail was not sent within 90 s of the restart")
	}
	d.waitOrderStatus(t, orderID, "fulfilled", 30*time.Second)
	time.Sleep(3 * time.Second)
	after := d.licensesOf(t, buyer)
	key := licenseKeyRe.FindString(mailText(t, relay.message(buyer)))
	t.Logf("kill: after the restart %d license(s), %d e-mail(s), order fulfilled", len(after), relay.count(buyer))
	if len(after) != 1 || relay.count(buyer) != 1 || after[0].(map[string]any)["id"] != issued[0].(map[string]any)["id"] {
		t.Fatal("the order did not complete exactly once after the restart")
	}
	if key == "" || !strings.EqualFold(strings.ReplaceAll(key, "-", ""), strings.ReplaceAll(after[0].(map[string]any)["key"].(string), "-", "")) {
		t.Fatalf("the e-mailed key %q is not the issued license's", key)
	}
}
