package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
)

// queueFlag checks the --queue of cmd. Left out, q is "" and the command
// means what leftOut says ("the default queue", "every queue"). Given, it
// must name a queue: an empty or blank --queue (a variable that was not
// set) would otherwise mean the same as leaving it out, silently.
func queueFlag(cmd *cobra.Command, q, leftOut string) error {
	if !cmd.Flags().Changed("queue") {
		return nil
	}
	if strings.TrimSpace(q) == "" {
		return usageError{fmt.Errorf("--queue %q names no queue: give a queue name (%s), or leave --queue out for %s", q, queue.NameRule, leftOut)}
	}
	return checkQueueName(q)
}

// checkQueueName refuses a name that is not a queue name with the queue
// service's own message (queue.CheckQueue), before any daemon or Redis is
// asked, so that every command says the same.
func checkQueueName(q string) error {
	if err := queue.CheckQueue(q); err != nil {
		return usageError{errors.New(core.ErrorMessage(err))}
	}
	return nil
}
