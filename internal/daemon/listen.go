package daemon

import (
	"errors"
	"fmt"
	"net"
)

// listenError is the error of a listener that could not bind addr: net's
// own error repeats the operation and the address ("listen tcp X: bind: …"),
// so only its cause follows the address ("listen on X: bind: address
// already in use", "listen on X: lookup H: no such host").
func listenError(addr string, err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return fmt.Errorf("listen on %s: %w", addr, op.Err)
	}
	return fmt.Errorf("listen on %s: %w", addr, err)
}
