package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// queueNameRule is what a queue name may be, in the queue service's words.
const queueNameRule = "want 1-64 letters, digits, and _ . : -"

// queueFlag checks the --queue of cmd. Left out, q is "" and the command
// means what leftOut says ("the default queue", "every queue"). Given, it
// must name a queue: an empty or blank --queue (a variable that was not
// set) would otherwise mean the same as leaving it out, silently.
func queueFlag(cmd *cobra.Command, q, leftOut string) error {
	if !cmd.Flags().Changed("queue") {
		return nil
	}
	if strings.TrimSpace(q) == "" {
		return usageError{fmt.Errorf("--queue %q names no queue: give a queue name (1-64 letters, digits, and _ . : -), or leave --queue out for %s", q, leftOut)}
	}
	return checkQueueName(q)
}

// checkQueueName refuses a name that is not a queue name with the message
// the queue service gives for it, so that every command says the same
// whichever of them (or of the drivers) meets the name first: the service
// itself words it differently for a listing's filter.
func checkQueueName(q string) error {
	if !validQueueName(q) {
		return usageError{fmt.Errorf("queue %q: %s", q, queueNameRule)}
	}
	return nil
}

// validQueueName is the queue service's rule (queue.validQueue, which is
// not exported): 1-64 letters, digits, and _ . : -. TestQueueNameAsTheService
// holds the two together.
func validQueueName(q string) bool {
	if len(q) == 0 || len(q) > 64 {
		return false
	}
	for i := 0; i < len(q); i++ {
		switch c := q[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}
