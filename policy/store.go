package policy

import (
	"sync"
	"sync/atomic"
)

// Store holds the policy in force and replaces it on Reload, keeping the
// last good policy when a new one is invalid. Policy is lock-free and safe
// to call from any goroutine while a reload runs.
type Store struct {
	path     string
	opts     Options
	onReload func(current *Policy, err error)

	mu  sync.Mutex // serialises reloads
	cur atomic.Pointer[Policy]
}

// NewStore loads the policy at path. The first load must succeed.
// onReload, if not nil, is called after every Reload with the policy now
// in force and the reload's error (nil on success).
func NewStore(path string, opts Options, onReload func(current *Policy, err error)) (*Store, error) {
	p, err := Load(path, opts)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, opts: opts, onReload: onReload}
	s.cur.Store(p)
	return s, nil
}

// Policy returns the policy in force.
func (s *Store) Policy() *Policy { return s.cur.Load() }

// Reload loads the policy file again. On success the new policy replaces
// the old one atomically; on failure the old one stays in force and the
// error lists every problem.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := Load(s.path, s.opts)
	if err == nil {
		s.cur.Store(p)
	}
	if s.onReload != nil {
		s.onReload(s.cur.Load(), err)
	}
	return err
}
