package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

var signInLinkRe = regexp.MustCompile(`https?://[^\s"<>]+/auth/verify\?token=[^\s"<>]+`)

// meCall sends a customer API request with a bearer session and checks the status.
func (d *devProcess) meCall(t *testing.T, token, method, path string, body any, want int) map[string]any {
	t.Helper()
	var rd io.Reader
	if b, ok := body.([]byte); ok {
		rd = bytes.NewReader(b)
	} else if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+d.http+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, res.StatusCode, want, raw)
	}
	out := map[string]any{}
	_ = json.Unmarshal(raw, &out)
	out["_raw"] = string(raw)
	return out
}

// signIn asks for a sign-in link, takes it from the outbox and turns it into a bearer session.
func (d *devProcess) signIn(t *testing.T, email string) string {
	t.Helper()
	d.meCall(t, "", "POST", "/v1/auth/email-link", map[string]any{"email": email}, 202)
	deadline := time.Now().Add(30 * time.Second)
	var link string
	for link == "" && time.Now().Before(deadline) {
		for _, m := range outboxTo(t, d, email) {
			if strings.Contains(m, "/auth/verify?token=") {
				link = signInLinkRe.FindString(mailText(t, m))
			}
		}
		if link == "" {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if link == "" {
		t.Fatalf("no sign-in link for %s in the outbox", email)
	}
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	res := d.meCall(t, "", "POST", "/v1/auth/verify", map[string]any{"token": u.Query().Get("token"), "session": "bearer"}, 200)
	tok, _ := res["token"].(string)
	if tok == "" {
		t.Fatalf("no bearer token in %v", res)
	}
	// The link is single use.
	d.meCall(t, "", "POST", "/v1/auth/verify", map[string]any{"token": u.Query().Get("token"), "session": "bearer"}, 401)
	return tok
}

// buy runs a checkout for items and pays it with a signed Stripe event; it returns the order id
// and waits for the delivery e-mail.
func (d *devProcess) buy(t *testing.T, email string, items []map[string]any, eventID string) (string, string) {
	t.Helper()
	st, res := d.checkout(t, email, items, "")
	if st != 201 {
		t.Fatalf("checkout: %d %v", st, res)
	}
	orderID, total := orderOf(t, res)
	if st, body := d.stripeEvent(t, eventID, "checkout.session.completed", sessionCompleted(orderID, email, "pi_"+eventID, total)); st != 200 {
		t.Fatalf("webhook: %d %v", st, body)
	}
	var mail string
	deadline := time.Now().Add(60 * time.Second)
	for mail == "" && time.Now().Before(deadline) {
		for _, m := range outboxTo(t, d, email) {
			if strings.Contains(m, "delivery-"+orderID) {
				mail = mailText(t, m)
			}
		}
		if mail == "" {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if mail == "" {
		t.Fatalf("no delivery e-mail for %s", orderID)
	}
	return orderID, mail
}

func items(res map[string]any) []map[string]any {
	raw, _ := res["items"].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, r := range raw {
		if m, ok := r.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// TestE2ECustomers is issue 4's end-to-end run: buy → delivery e-mail → sign in with the link from
// the outbox → the license in /v1/me → two devices → one revoked from the customer API (its
// validate is refused) → a claim approved through the e-mail link → bootstrap → an air-gapped
// activation through a request file and its answer → the recovery e-mail lists the key. Then the
// IDOR suite: customer B gets 404 for each of A's objects, by id and by key.
func TestE2ECustomers(t *testing.T) {
	start := time.Now()
	d := commerceDev(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	d.sellable(t, "cust-synth", "plugin", 3900, 3)
	d.admin(t, "POST", "/v1/admin/products", map[string]any{"slug": "cust-verb", "name": "Cust Verb", "type": "plugin", "price_cents": 2900, "currency": "USD",
		"policy": map[string]any{"max_activations": 2, "first_activation": "owner_approval", "heartbeat_interval_s": 3600, "grace_period_s": 7200}}, 201)

	alice := "alice-cust@example.com"
	orderID, mail := d.buy(t, alice, []map[string]any{{"product": "cust-synth", "quantity": 1}, {"product": "cust-verb", "quantity": 1}}, "evt_cust_alice")
	keys := licenseKeyRe.FindAllString(mail, -1)
	if len(keys) != 2 {
		t.Fatalf("the delivery e-mail has %d keys, want 2:\n%s", len(keys), mail)
	}
	tokA := d.signIn(t, alice)
	lics := items(d.meCall(t, tokA, "GET", "/v1/me/licenses", nil, 200))
	if len(lics) != 2 {
		t.Fatalf("/v1/me/licenses: %d licenses, want 2", len(lics))
	}
	byProduct := map[string]map[string]any{}
	for _, l := range lics {
		byProduct[l["product"].(string)] = l
		if strings.Contains(fmt.Sprint(l), keys[0]) || strings.Contains(fmt.Sprint(l), keys[1]) {
			t.Fatalf("the license list shows a whole key: %v", l)
		}
	}
	synth, verb := byProduct["cust-synth"], byProduct["cust-verb"]
	synthKey := d.meCall(t, tokA, "POST", "/v1/me/licenses/"+synth["id"].(string)+"/reveal-key", map[string]any{}, 200)["key"].(string)
	verbKey := d.meCall(t, tokA, "POST", "/v1/me/licenses/"+verb["id"].(string)+"/reveal-key", map[string]any{}, 200)["key"].(string)
	t.Logf("flow 1: bought, e-mailed, signed in by link, /v1/me lists 2 licenses with masked keys; %v", time.Since(start).Round(time.Millisecond))

	// Two devices; one revoked from the customer API → its validate is refused.
	dev1, dev2 := d.client(t, "cust-synth", "cust-dev-1"), d.client(t, "cust-synth", "cust-dev-2")
	a1, err := dev1.Activate(ctx, synthKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev2.Activate(ctx, synthKey); err != nil {
		t.Fatal(err)
	}
	lic := d.meCall(t, tokA, "GET", "/v1/me/licenses/"+synth["id"].(string), nil, 200)
	if devs, _ := lic["devices"].([]any); len(devs) != 2 || lic["seats_used"] != 2.0 {
		t.Fatalf("the license after two activations: %v", lic["_raw"])
	}
	d.meCall(t, tokA, "POST", "/v1/me/devices/"+a1.ActivationID+"/revoke", map[string]any{}, 200)
	_, err = dev1.Validate(ctx)
	expectProblem(t, "validate of the revoked device", err, 403, "ACTIVATION_REVOKED", "CERTIFICATE_REVOKED")
	if v, err := dev2.Validate(ctx); err != nil || !v.Valid {
		t.Fatalf("the other device: %+v %v", v, err)
	}
	// The revoked certificate is in its intermediate's CRL, at the URL the certificate names.
	blk, _ := pem.Decode([]byte(a1.Certificate))
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil || len(leaf.CRLDistributionPoints) != 1 {
		t.Fatalf("the device certificate names no CRL: %v %v", err, leaf.CRLDistributionPoints)
	}
	crlRes, err := http.Get(leaf.CRLDistributionPoints[0])
	if err != nil {
		t.Fatal(err)
	}
	crlDER, _ := io.ReadAll(crlRes.Body)
	crlRes.Body.Close()
	crl, err := x509.ParseRevocationList(crlDER)
	if err != nil {
		t.Fatalf("GET %s: %d, %v", leaf.CRLDistributionPoints[0], crlRes.StatusCode, err)
	}
	listed := false
	for _, e := range crl.RevokedCertificateEntries {
		listed = listed || e.SerialNumber.Cmp(leaf.SerialNumber) == 0
	}
	if !listed {
		t.Fatalf("the revoked certificate %X is not in %s (%d entries)", leaf.SerialNumber, leaf.CRLDistributionPoints[0], len(crl.RevokedCertificateEntries))
	}
	t.Logf("flow 2: two devices activated; one revoked from /v1/me → its validate refused, the other valid; its certificate is in the CRL at %s", leaf.CRLDistributionPoints[0])

	// A claim approved through the e-mail's confirmation link, then bootstrap.
	vc := d.client(t, "cust-verb", "cust-verb-dev")
	act, err := vc.Activate(ctx, verbKey)
	if err != nil || act.Pending == nil {
		t.Fatalf("activate on owner approval: %+v %v", act, err)
	}
	claims := items(d.meCall(t, tokA, "GET", "/v1/me/claims", nil, 200))
	if len(claims) != 1 || claims[0]["id"] != act.Pending.ClaimID {
		t.Fatalf("/v1/me/claims: %v", claims)
	}
	var confirm string
	for deadline := time.Now().Add(30 * time.Second); confirm == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		for _, m := range outboxTo(t, d, alice) {
			if l := confirmLink.FindString(mailText(t, m)); l != "" {
				confirm = l
			}
		}
	}
	if confirm == "" {
		t.Fatal("no confirmation e-mail for the claim")
	}
	cu, _ := url.Parse(confirm)
	res, err := http.PostForm("http://"+d.http+cu.Path, url.Values{"token": {cu.Query().Get("token")}, "decision": {"approve"}})
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("approving through the e-mail link: %v %v", res, err)
	}
	res.Body.Close()
	if b, err := vc.Bootstrap(ctx, ""); err != nil || b.ActivationID == "" {
		t.Fatalf("bootstrap after the approval: %+v %v", b, err)
	}
	t.Log("flow 3: claim listed in /v1/me/claims, approved through the e-mail link, bootstrap got the certificate")

	// Air-gapped: a request file uploaded by the owner, its answer applied by the SDK.
	// The studio machine was given the server's keys with the installer (here: fetched once).
	air := d.client(t, "cust-synth", "cust-airgapped")
	if _, err := air.FetchKeys(ctx); err != nil {
		t.Fatal(err)
	}
	file, err := air.OfflineActivationRequest(ctx, synthKey)
	if err != nil {
		t.Fatal(err)
	}
	answer := d.meCall(t, tokA, "POST", "/v1/me/offline-activations", file, 200)["_raw"].(string)
	applied, err := air.ApplyOfflineActivationAnswer(ctx, []byte(answer))
	if err != nil || applied.ActivationID == "" {
		t.Fatalf("applying the answer file: %+v %v", applied, err)
	}
	if v, err := air.Validate(ctx); err != nil || !v.Valid {
		t.Fatalf("validate of the air-gapped device once online: %+v %v", v, err)
	}
	t.Log("flow 4: air-gapped activation: request file → /v1/me/offline-activations → answer verified and applied by the SDK")

	// Recovery: the e-mail lists every key of the address.
	before := len(outboxTo(t, d, alice))
	d.meCall(t, "", "POST", "/v1/recover", map[string]any{"email": alice}, 202)
	d.meCall(t, "", "POST", "/v1/recover", map[string]any{"email": "nobody-here@example.com"}, 202)
	var recovery string
	for deadline := time.Now().Add(30 * time.Second); recovery == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if ms := outboxTo(t, d, alice); len(ms) > before {
			for _, m := range ms {
				if strings.Contains(m, "recovery-") {
					recovery = mailText(t, m)
				}
			}
		}
	}
	if !strings.Contains(recovery, synthKey) || !strings.Contains(recovery, verbKey) {
		t.Fatalf("the recovery e-mail does not list both keys:\n%s", recovery)
	}
	if n := len(outboxTo(t, d, "nobody-here@example.com")); n != 0 {
		t.Fatalf("an unknown address got %d e-mails", n)
	}
	t.Log("flow 5: recovery e-mail lists both keys; an unknown address got the same answer and no e-mail")

	// IDOR: customer B, signed in, asks for each of A's objects.
	bob := "bob-cust@example.com"
	d.buy(t, bob, []map[string]any{{"product": "cust-synth", "quantity": 1}}, "evt_cust_bob")
	tokB := d.signIn(t, bob)
	probes := []struct{ method, path string }{
		{"GET", "/v1/me/licenses/" + synth["id"].(string)},
		{"GET", "/v1/me/licenses/" + url.PathEscape(synthKey)},
		{"POST", "/v1/me/licenses/" + synth["id"].(string) + "/reveal-key"},
		{"POST", "/v1/me/licenses/" + synth["id"].(string) + "/reissue-key"},
		{"PATCH", "/v1/me/devices/" + a1.ActivationID},
		{"POST", "/v1/me/devices/" + a1.ActivationID + "/revoke"},
		{"POST", "/v1/me/devices/" + a1.ActivationID + "/release-seat"},
		{"POST", "/v1/me/claims/" + act.Pending.ClaimID + "/approve"},
		{"POST", "/v1/me/claims/" + act.Pending.ClaimID + "/reject"},
		{"GET", "/v1/me/orders/" + orderID},
	}
	for _, p := range probes {
		var body any = map[string]any{}
		if p.method == "PATCH" {
			body = map[string]any{"name": "stolen"}
		}
		r := d.meCall(t, tokB, p.method, p.path, body, 404)
		if strings.Contains(r["_raw"].(string), alice) {
			t.Fatalf("%s %s leaked A's data: %s", p.method, p.path, r["_raw"])
		}
	}
	d.meCall(t, tokB, "POST", "/v1/me/downloads", map[string]any{"order_id": orderID, "product": "cust-synth"}, 404)
	// B's offline request file naming A's key: 404, nothing processed.
	thief := d.client(t, "cust-synth", "cust-thief")
	stolen, err := thief.OfflineActivationRequest(ctx, synthKey)
	if err != nil {
		t.Fatal(err)
	}
	d.meCall(t, tokB, "POST", "/v1/me/offline-activations", stolen, 404)
	// B sees only B's own.
	if l := items(d.meCall(t, tokB, "GET", "/v1/me/licenses", nil, 200)); len(l) != 1 {
		t.Fatalf("B sees %d licenses, want 1", len(l))
	}
	if o := items(d.meCall(t, tokB, "GET", "/v1/me/orders", nil, 200)); len(o) != 1 || o[0]["id"] == orderID {
		t.Fatalf("B's orders: %v", o)
	}
	t.Logf("flow 6: IDOR: B got 404 for %d probes of A's license (by id and by key), devices, claims, order, download and offline activation", len(probes)+2)

	// A's license still intact after B's attempts; sign-out everywhere ends A's session.
	if l := d.meCall(t, tokA, "GET", "/v1/me/licenses/"+synth["id"].(string), nil, 200); l["status"] != "active" {
		t.Fatalf("A's license after B's probes: %v", l["_raw"])
	}
	d.meCall(t, tokA, "POST", "/v1/auth/sign-out-everywhere", map[string]any{}, 200)
	d.meCall(t, tokA, "GET", "/v1/me/licenses", nil, 401)
	t.Logf("all customer flows took %v", time.Since(start).Round(time.Millisecond))
}
