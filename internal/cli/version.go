package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/refrakt/refrakt/internal/version"
)

func newVersionCmd(f *Factory) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "version",
		Short:   "Print refrakt's version, commit and Go version",
		Args:    cobra.NoArgs,
		Example: "  refrakt version\n  refrakt version -o json",
		RunE: func(cmd *cobra.Command, args []string) error {
			info := version.Get()
			switch output {
			case "json":
				enc := json.NewEncoder(f.IO.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			case "", "table":
				_, err := fmt.Fprintln(f.IO.Out, versionLine(info))
				return err
			}
			return usageError{fmt.Errorf("--output %q: must be table or json", output)}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: table or json")
	return cmd
}

// versionLine is what `refrakt version` and `refrakt --version` print.
func versionLine(info version.Info) string {
	return fmt.Sprintf("refrakt %s (commit %s, %s)", info.Version, info.Commit, info.GoVersion)
}
