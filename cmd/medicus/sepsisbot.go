package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/medicus-health/medicus/sepsisbot/evaluate"
	"github.com/medicus-health/medicus/sepsisbot/evaluate/benchmark"
	"github.com/medicus-health/medicus/sepsisbot/model"
	"github.com/medicus-health/medicus/sepsisbot/physionet"
)

// sepsisbotSubcommands are added to `medicus sepsisbot` by sepsisbotCmd.
// Another file adds its subcommands (replay, run, …) without touching this
// one, from an init function:
//
//	func init() { sepsisbotSubcommands = append(sepsisbotSubcommands, sepsisbotRunCmd) }
var sepsisbotSubcommands []func() *cobra.Command

func sepsisbotCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sepsisbot",
		Short: "Sepsis early-warning bot: train and evaluate the model, run the bot",
	}
	cmd.AddCommand(sepsisbotTrainCmd(), sepsisbotEvalCmd(), sepsisbotCVCmd())
	for _, sub := range sepsisbotSubcommands {
		cmd.AddCommand(sub())
	}
	return cmd
}

// stayFiles lists the .psv files of dir, the first limit of them if limit > 0.
func stayFiles(dir string, limit int) ([]string, error) {
	if dir == "" {
		return nil, fmt.Errorf("--data DIR is required")
	}
	files, err := physionet.Files(dir)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no .psv files in %s", dir)
	}
	if limit > 0 && limit < len(files) {
		files = files[:limit]
	}
	return files, nil
}

// loadStays parses the stays of dir (the first limit, if limit > 0).
func loadStays(cmd *cobra.Command, dir string, limit int) ([]*physionet.Stay, error) {
	files, err := stayFiles(dir, limit)
	if err != nil {
		return nil, err
	}
	return benchmark.LoadStays(cmd.Context(), files)
}

func sepsisbotTrainCmd() *cobra.Command {
	var data, out string
	var seed uint64
	var limit int
	var params model.Params
	cmd := &cobra.Command{
		Use:   "train --data DIR --out model.json",
		Short: "Train the risk model on PhysioNet 2019 .psv stays",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out FILE is required")
			}
			stays, err := loadStays(cmd, data, limit)
			if err != nil {
				return err
			}
			logw := cmd.ErrOrStderr()
			m, err := model.Fit(cmd.Context(), stays, model.FitConfig{Params: params, Seed: seed, Progress: progressPrinter(logw)})
			if err != nil {
				return err
			}
			f, err := os.Create(out)
			if err != nil {
				return err
			}
			if err := m.Save(f); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "trained on %d stays (%d rows), %d trees, threshold %.4g, validation utility %.3f → %s\n",
				m.Training.Stays, m.Training.Rows, len(m.Trees), m.Threshold, m.Training.ValidationUtility, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", "", "directory of .psv files (e.g. ../shared/physionet2019/training_setA)")
	cmd.Flags().StringVar(&out, "out", "", "file to write the model to (JSON)")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "random seed (training is deterministic for a seed)")
	cmd.Flags().IntVar(&limit, "limit", 0, "use only the first N stays (0: all)")
	cmd.Flags().IntVar(&params.Rounds, "rounds", 0, fmt.Sprintf("maximum number of trees (default %d)", model.DefaultParams.Rounds))
	return cmd
}

func progressPrinter(w io.Writer) func(int, float64) {
	return func(round int, loss float64) {
		if round%25 == 0 {
			fmt.Fprintf(w, "round %d: validation log loss %.5f\n", round, loss)
		}
	}
}

func loadModel(path string) (*model.Model, error) {
	if path == "" {
		return model.Default()
	}
	return model.LoadFile(path)
}

func sepsisbotEvalCmd() *cobra.Command {
	var data, modelPath string
	var threshold float64
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "eval --data DIR [--model FILE] [--threshold X] [--json]",
		Short: "Score every .psv stay hour by hour and report utility, AUROC, AUPRC and alert burden beside qSOFA, SIRS and NEWS2",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			files, err := stayFiles(data, limit)
			if err != nil {
				return err
			}
			m, err := loadModel(modelPath)
			if err != nil {
				return err
			}
			thr := m.Threshold
			if cmd.Flags().Changed("threshold") {
				thr = threshold
			}
			r, err := benchmark.EvaluateFiles(cmd.Context(), files, m, thr)
			if err != nil {
				return err
			}
			return printResults(cmd.OutOrStdout(), r, asJSON)
		},
	}
	cmd.Flags().StringVar(&data, "data", "", "directory of .psv files")
	cmd.Flags().StringVar(&modelPath, "model", "", "model file (default: the built-in model)")
	cmd.Flags().Float64Var(&threshold, "threshold", 0, "alert when risk ≥ X (default: the model's threshold)")
	cmd.Flags().IntVar(&limit, "limit", 0, "use only the first N stays (0: all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func sepsisbotCVCmd() *cobra.Command {
	var data string
	var seed uint64
	var folds, limit int
	var threshold float64
	var asJSON bool
	var params model.Params
	cmd := &cobra.Command{
		Use:   "cv --data DIR [--folds K] [--seed N] [--json]",
		Short: "Patient-level k-fold cross-validation of the model, beside qSOFA, SIRS and NEWS2",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stays, err := loadStays(cmd, data, limit)
			if err != nil {
				return err
			}
			logw := cmd.ErrOrStderr()
			cfg := model.FitConfig{Params: params, Seed: seed}
			r, err := benchmark.CrossValidate(cmd.Context(), stays, folds, cfg, threshold, func(fold int, m *model.Model) {
				fmt.Fprintf(logw, "fold %d/%d: %d trees, threshold %.4g, validation utility %.3f\n",
					fold, folds, len(m.Trees), m.Threshold, m.Training.ValidationUtility)
			})
			if err != nil {
				return err
			}
			return printResults(cmd.OutOrStdout(), r, asJSON)
		},
	}
	cmd.Flags().StringVar(&data, "data", "", "directory of .psv files")
	cmd.Flags().IntVar(&folds, "folds", 5, "number of folds")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "random seed for folds and training")
	cmd.Flags().IntVar(&limit, "limit", 0, "use only the first N stays (0: all)")
	cmd.Flags().Float64Var(&threshold, "threshold", 0, "alert when risk ≥ X (default: each fold model's own threshold)")
	cmd.Flags().IntVar(&params.Rounds, "rounds", 0, fmt.Sprintf("maximum number of trees (default %d)", model.DefaultParams.Rounds))
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func printResults(w io.Writer, r benchmark.Results, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(r)
	}
	fmt.Fprintf(w, "%d stays (%d septic), %d hours", r.Patients, r.SepticPatients, r.Hours)
	if r.Folds > 0 {
		fmt.Fprintf(w, ", %d-fold patient-level cross-validation", r.Folds)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tutility\tAUROC\tAUPRC\tsensitivity\talerts/patient-day\tmedian warning h\t")
	line := func(name string, x evaluate.Report) {
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.1f\t\n", name, x.Utility, x.AUROC, x.AUPRC, x.Sensitivity, x.AlertsPerPatientDay, x.MedianWarningHours)
	}
	line(fmt.Sprintf("model (risk ≥ %.4g)", r.Threshold), r.Report)
	for _, b := range benchmark.Baselines {
		line(b.Name, r.Baselines[b.Name])
	}
	return tw.Flush()
}
