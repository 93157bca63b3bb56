package store_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/host/store/pgtest"
	"github.com/wahub/wahub/host/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

var sqliteBackend = storetest.Backend{
	Open: func(t *testing.T, now func() time.Time) *store.Store {
		s, err := store.Open(filepath.Join(t.TempDir(), "data", "wahub.db"), store.Options{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
}

func openPostgres(t *testing.T, url string, now func() time.Time) *store.Store {
	t.Helper()
	// No polling: a hub must be woken by the others' notifications.
	s, err := store.OpenPostgres(url, store.Options{Now: now}, store.PostgresOptions{PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var postgresBackend = storetest.Backend{
	Open: func(t *testing.T, now func() time.Time) *store.Store { return openPostgres(t, pgtest.URL(t), now) },
	Share: func(t *testing.T, now func() time.Time, n int) []*store.Store {
		url := pgtest.URL(t)
		out := make([]*store.Store, n)
		for i := range out {
			out[i] = openPostgres(t, url, now)
		}
		return out
	},
}

func TestSQLite(t *testing.T)   { storetest.Run(t, sqliteBackend) }
func TestPostgres(t *testing.T) { storetest.Run(t, postgresBackend) }
