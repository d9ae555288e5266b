{{- /* The samplero device certificate (PROTOCOL.md section 7). Only the public key comes from the
       CSR; the activation comes from the one-time token the samplero server signs. */ -}}
{{- if not .Token.samplero_activation_id }}{{ fail "the token names no samplero_activation_id" }}{{ end -}}
{
	"subject": {"commonName": "samplero-device"},
	"uris": {{ toJson (list (print "urn:samplero:activation:" .Token.samplero_activation_id)) }},
	"keyUsage": ["digitalSignature"],
	"extKeyUsage": ["clientAuth"],
	"basicConstraints": {"isCA": false}
}
