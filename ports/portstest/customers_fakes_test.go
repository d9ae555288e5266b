package portstest_test

import (
	"testing"

	"github.com/samplero/samplero/ports/portstest"
)

func TestMemStoreCustomersContract(t *testing.T) {
	portstest.RunCustomersContract(t, func(t *testing.T) portstest.CustomersStores {
		return portstest.NewMemStore().CustomersStores()
	})
}
