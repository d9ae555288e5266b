#!/bin/sh
# Refreshes what an nginx edge needs to check device certificates (docs/crl.md):
#   client-cas.pem  every intermediate still trusted, then the root (the ca_chain of GET /v1/keys)
#   crls.pem        the revocation list of each of those intermediates (GET /v1/pki/crl/<id>.pem),
#                   then the offline root's list (ROOT_CRL, signed on the offline machine)
# and reloads nginx when either changed. Run it every 5 minutes (a systemd timer or cron); it exits
# non-zero, leaving the files in place, when anything is missing, does not verify, or expires within
# 15 minutes, so alert on its failures: nginx refuses every client certificate once a list in
# crls.pem passes its nextUpdate.
#
# Needs curl, jq and openssl. Settings (environment):
#   SAMPLERO_URL  base URL of a server, e.g. http://127.0.0.1:8081 (default)
#   DIR           where the files live (default /etc/nginx/samplero)
#   ROOT_CRL      the root's list in PEM (default $DIR/root.crl.pem)
#   RELOAD        command that reloads nginx (default: nginx -t && nginx -s reload)
set -eu

SAMPLERO_URL=${SAMPLERO_URL:-http://127.0.0.1:8081}
DIR=${DIR:-/etc/nginx/samplero}
ROOT_CRL=${ROOT_CRL:-$DIR/root.crl.pem}
RELOAD=${RELOAD:-"nginx -t && nginx -s reload"}
MARGIN=900 # seconds a list must still be valid for

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

curl -fsS "$SAMPLERO_URL/v1/keys" | jq -er .ca_chain >"$work/client-cas.pem"
# One file per certificate of the chain.
awk -v dir="$work" '/-----BEGIN CERTIFICATE-----/{n++} n{print > (dir "/ca-" n ".pem")}' "$work/client-cas.pem"

: >"$work/crls.pem"
count=0
for ca in "$work"/ca-*.pem; do
	subject=$(openssl x509 -in "$ca" -noout -subject -nameopt RFC2253)
	issuer=$(openssl x509 -in "$ca" -noout -issuer -nameopt RFC2253)
	if [ "${subject#subject=}" = "${issuer#issuer=}" ]; then
		rootca=$ca # the root: its list comes from ROOT_CRL, checked against it below
		continue
	fi
	# The intermediate id: "int_" and the first 8 bytes of SHA-256 over its SubjectPublicKeyInfo.
	id=int_$(openssl x509 -in "$ca" -noout -pubkey | openssl pkey -pubin -outform DER |
		openssl dgst -sha256 -r | cut -c1-16)
	curl -fsS "$SAMPLERO_URL/v1/pki/crl/$id.pem" >"$work/$id.crl.pem"
	# Signed by this intermediate, and not about to expire.
	openssl crl -in "$work/$id.crl.pem" -CAfile "$ca" -noout 2>&1 | grep -q 'verify OK' ||
		{ echo "refresh-crl: the list of $id does not verify" >&2; exit 1; }
	cat "$work/$id.crl.pem" >>"$work/crls.pem"
	count=$((count + 1))
done
[ "$count" -gt 0 ] || { echo "refresh-crl: no intermediate in ca_chain" >&2; exit 1; }
[ -s "$ROOT_CRL" ] || { echo "refresh-crl: $ROOT_CRL (the root's list) is missing" >&2; exit 1; }
[ -n "${rootca:-}" ] || { echo "refresh-crl: no root in ca_chain" >&2; exit 1; }
openssl crl -in "$ROOT_CRL" -CAfile "$rootca" -noout 2>&1 | grep -q 'verify OK' ||
	{ echo "refresh-crl: $ROOT_CRL is not signed by the root of ca_chain" >&2; exit 1; }
cat "$ROOT_CRL" >>"$work/crls.pem"

# Every list must outlive the next runs: refuse to install one that expires within MARGIN.
awk -v dir="$work" '/-----BEGIN X509 CRL-----/{n++} n{print > (dir "/check-" n ".pem")}' "$work/crls.pem"
limit=$(($(date +%s) + MARGIN))
for crl in "$work"/check-*.pem; do
	next=$(openssl crl -in "$crl" -noout -nextupdate | cut -d= -f2)
	if [ "$(date -d "$next" +%s)" -le "$limit" ]; then
		echo "refresh-crl: a list expires at $next (root list too old? server clock?)" >&2
		exit 1
	fi
done

changed=0
for f in client-cas.pem crls.pem; do
	if ! cmp -s "$work/$f" "$DIR/$f"; then
		install -m 0644 "$work/$f" "$DIR/$f.new"
		mv -f "$DIR/$f.new" "$DIR/$f"
		changed=1
	fi
done
if [ "$changed" = 1 ]; then
	sh -c "$RELOAD"
fi
