package sealing

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tokrun/tokrun/internal/regfile"
)

// maxKeyFile bounds the size of a key file read into memory.
const maxKeyFile = 1 << 20

// KeyRing holds the private keys a proxy can open secrets with, indexed by
// key id. Several keys allow rotation: seal new secrets to the new key
// while old blobs still open with the old one.
type KeyRing struct {
	keys []*PrivateKey
}

// NewKeyRing returns a ring of the given keys. Duplicate keys are an error.
func NewKeyRing(keys ...*PrivateKey) (*KeyRing, error) {
	r := &KeyRing{}
	for _, k := range keys {
		if r.lookup(k.pub.ID()) != nil {
			return nil, fmt.Errorf("%w: key %s appears twice", ErrKey, k.pub.ID())
		}
		r.keys = append(r.keys, k)
	}
	if len(r.keys) == 0 {
		return nil, fmt.Errorf("%w: no private keys", ErrKey)
	}
	return r, nil
}

// PublicKeys returns the public keys of the ring in file order.
func (r *KeyRing) PublicKeys() []PublicKey {
	out := make([]PublicKey, len(r.keys))
	for i, k := range r.keys {
		out[i] = k.pub
	}
	return out
}

func (r *KeyRing) lookup(id KeyID) *PrivateKey {
	for _, k := range r.keys {
		if k.pub.ID() == id {
			return k
		}
	}
	return nil
}

// ParseKeyFile parses key file content: one private key per line; blank
// lines and lines starting with "#" are comments. name is used in errors,
// which carry "name:line" and never the line's content.
func ParseKeyFile(name string, data []byte) (*KeyRing, error) {
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%s: %w: key file larger than %d bytes", name, ErrKey, maxKeyFile)
	}
	var keys []*PrivateKey
	lines := map[KeyID]int{}                        // the line each key is on
	data = bytes.TrimPrefix(data, []byte("\uFEFF")) // a byte order mark some editors write
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxKeyFile)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := ParsePrivateKey(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		if first, ok := lines[k.pub.ID()]; ok {
			return nil, fmt.Errorf("%s:%d: %w: key %s appears twice (first on line %d)", name, n, ErrKey, k.pub.ID(), first)
		}
		lines[k.pub.ID()] = n
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrKey, err)
	}
	r, err := NewKeyRing(keys...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return r, nil
}

// LoadKeyFile reads and parses the key file at path. If the file can be
// read by group or others, warn is called with a message saying so (the
// file is still loaded); warn may be nil.
func LoadKeyFile(path string, warn func(string)) (*KeyRing, error) {
	if strings.Contains(strings.ToLower(path), privateHRP) {
		// Never quoted: it is the key itself, given in place of its file.
		return nil, fmt.Errorf("%w: a private key was given where the path of its key file belongs; put the key in a file (mode 0600) and give that file", ErrKey)
	}
	f, err := regfile.Open(path, os.O_RDONLY, 0)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("key file %s: %w", path, pe.Err)
		}
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	if st.Size() > maxKeyFile {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", path, ErrKey, maxKeyFile)
	}
	data := make([]byte, st.Size())
	if n, err := f.ReadAt(data, 0); n != len(data) {
		return nil, fmt.Errorf("%s: %w: reading: %v", path, ErrKey, err)
	}
	ring, err := ParseKeyFile(path, data)
	// Only a file that holds a private key is worth the warning (not a
	// public key file given by mistake, which the error explains).
	if perm := st.Mode().Perm(); perm&0o077 != 0 && warn != nil &&
		(err == nil || bytes.Contains(bytes.ToLower(data), []byte(privateHRP))) {
		warn(fmt.Sprintf("key file %s is accessible by group or others (mode %04o); run: chmod 600 %s", path, perm, path))
	}
	return ring, err
}

// KeyFileText returns the text of a new key file holding k, with comments
// that record its creation time, public key and key id.
func KeyFileText(k *PrivateKey, created time.Time) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# created: %s\n", created.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "# public key: %s\n", k.pub)
	fmt.Fprintf(&b, "# key id: %s\n", k.pub.ID())
	b.WriteString(k.Reveal())
	b.WriteByte('\n')
	return b.Bytes()
}

// WriteKeyFile creates path exclusively (it must not exist) with mode 0600
// and writes a key file for k. The file appears whole or not at all: it
// is written and synced under a temporary name in the same directory and
// then linked into place, which fails if path exists meanwhile. A write
// interrupted by a kill can leave only the temporary file (".key-*")
// behind. On file systems without hard links it is created in place.
func WriteKeyFile(path string, k *PrivateKey, created time.Time) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("refusing to overwrite %s: %w", path, fs.ErrExist)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, regfile.Cause(err))
	}
	defer os.Remove(tmp.Name())
	if err := writeSynced(tmp, KeyFileText(k, created)); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	switch err := os.Link(tmp.Name(), path); {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("refusing to overwrite %s: %w", path, fs.ErrExist)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("refusing to overwrite %s: %w", path, fs.ErrExist)
		}
		return fmt.Errorf("creating %s: %w", path, regfile.Cause(err))
	}
	if err := writeSynced(f, KeyFileText(k, created)); err != nil {
		os.Remove(path)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// writeSynced makes f mode 0600 whatever the umask, writes data, syncs
// and closes f.
func writeSynced(f *os.File, data []byte) error {
	err := f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return regfile.Cause(err)
}
