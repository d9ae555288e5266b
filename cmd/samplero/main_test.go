package main

import (
	"strings"
	"testing"
)

func TestRunExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"--help"}, 0, "samplero dev"},
		{[]string{"dev", "--help"}, 0, "-temporal-ui-port"},
		{[]string{"device", "--help"}, 0, "-key-type"},
		{nil, 2, "Usage"},
		{[]string{"bogus"}, 2, "unknown command"},
		{[]string{"serve"}, 2, "SAMPLERO_DATABASE_URL"},
		{[]string{"device", "validate", "--ca", "/nonexistent/ca.pem"}, 1, "--ca"},
	} {
		var stdout, stderr strings.Builder
		code := run(tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stdout.String()+stderr.String(), tc.out) {
			t.Errorf("run(%v) = %d, output %q; want %d containing %q", tc.args, code, stdout.String()+stderr.String(), tc.code, tc.out)
		}
	}
}
