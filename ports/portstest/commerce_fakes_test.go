package portstest_test

import (
	"testing"

	"github.com/samplero/samplero/ports/portstest"
)

func TestMemStoreCommerceContract(t *testing.T) {
	portstest.RunCommerceContract(t, func(t *testing.T) portstest.CommerceStores {
		return portstest.NewMemStore().CommerceStores()
	})
}

// The licensing and commerce repositories of one MemStore share its transactions: a rollback
// undoes both.
func TestMemStoreCommerceSharesTransactions(t *testing.T) {
	s := portstest.NewMemStore()
	portstest.RunSharedTxCheck(t, s.Stores(), s.CommerceStores())
}
