using System.Collections.Concurrent;
using System.Diagnostics;
using Sessionization.Persistence.Tables;

namespace Sessionization.Tests.Cli;

/// <summary>The long-running worker as a real process: polling, the one-coordinator lock, clean stop on SIGTERM.</summary>
public sealed class WorkerProcessTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);
    private readonly TempDirectory _temp = new();

    /// <summary>A worker is started on a base directory that exists and is empty; one that is missing is waited for (<see cref="BadInputProcessTests"/>).</summary>
    public WorkerProcessTests() => Directory.CreateDirectory(Data);

    private string Data => _temp.Combine("data");

    [Fact]
    public void The_worker_processes_new_commits_refuses_a_second_coordinator_and_stops_on_sigterm()
    {
        using var worker = new RunningWorker(Data);
        worker.WaitFor("worker: polling");

        SessionizeProcess.Ok(Data, "generate-new-rows");
        Assert.StartsWith("batch 0: 1 file (visits_table v0..v0), 4 visits, 3 users, 3 pending", worker.WaitFor("batch 0:"));

        var second = SessionizeProcess.Run(Data, "run");
        Assert.Equal(1, second.ExitCode);
        Assert.Contains("another coordinator is active on", second.Err);
        Assert.Contains($"pid {worker.Process.Id} (worker)", second.Err);

        SessionizeProcess.Ok(Data, "generate-closing-rows");
        Assert.StartsWith("batch 1: 1 file (visits_table v1..v1), 2 visits, 4 users, 2 pending, 2 completed", worker.WaitFor("batch 1:"));

        worker.Signal("TERM");
        worker.WaitFor("worker: stopping");
        Assert.True(worker.Process.WaitForExit(Patience), "worker did not exit after SIGTERM");
        Assert.Equal(0, worker.Process.ExitCode);

        Assert.Equal("run: no new visits since the last checkpoint; no batch formed\n", SessionizeProcess.Ok(Data, "run").Out);
    }

    [Fact]
    public void A_killed_worker_does_not_leave_the_lock_stuck()
    {
        using (var worker = new RunningWorker(Data))
        {
            worker.WaitFor("worker: polling");
            worker.Signal("KILL");
            Assert.True(worker.Process.WaitForExit(Patience));
        }

        SessionizeProcess.Ok(Data, "generate-new-rows");
        Assert.StartsWith("batch 0:", SessionizeProcess.Ok(Data, "run").Out);
    }

    private static void Generate(string data, int seed) =>
        SessionizeProcess.Ok(data, "generate", "--users", "400", "--visits", "3000", "--seed", seed.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>The tables after one <c>run</c> per commit of seeds 1..<paramref name="commits"/>: one batch per commit.</summary>
    private string Reference(int commits)
    {
        var reference = _temp.Combine("reference");
        for (var seed = 1; seed <= commits; seed++)
        {
            Generate(reference, seed);
            SessionizeProcess.Ok(reference, "run");
        }

        return reference;
    }

    private static async Task AssertSameTables(string expected, string actual)
    {
        foreach (var table in new Func<string, SessionTable>[] { d => SessionTable.Pending(d), d => SessionTable.Completed(d) })
        {
            var want = (await table(expected).ReadAllAsync()).OrderBy(r => r.BatchNumber).ThenBy(r => r.UserId).ToList();
            var got = (await table(actual).ReadAllAsync()).OrderBy(r => r.BatchNumber).ThenBy(r => r.UserId).ToList();
            Assert.NotEmpty(want);
            Assert.Equal(want, got);
        }
    }

    [Fact]
    public async Task A_worker_killed_while_its_entities_are_live_restarts_from_the_store_and_ends_as_a_clean_run()
    {
        using (var worker = new RunningWorker(Data))
        {
            worker.WaitFor("worker: polling");
            for (var seed = 1; seed <= 3; seed++)
            {
                Generate(Data, seed);
                worker.WaitFor($"batch {seed - 1}:");
            }

            // Killed with the open sessions of three batches live in memory and a new commit arriving.
            Generate(Data, 4);
            worker.Signal("KILL");
            Assert.True(worker.Process.WaitForExit(Patience));
        }

        // The kill may land before or after commit 4 became batch 3; one file per batch makes both end alike.
        using (var worker = new RunningWorker(Data, "--max-files-per-batch", "1"))
        {
            worker.WaitFor("worker: polling");
            Generate(Data, 5);
            worker.WaitFor("batch 4:");
        }

        await AssertSameTables(Reference(5), Data);
    }

    [Fact]
    public async Task A_rewind_between_two_workers_is_what_the_second_one_resumes_from()
    {
        using (var worker = new RunningWorker(Data))
        {
            worker.WaitFor("worker: polling");
            for (var seed = 1; seed <= 4; seed++)
            {
                Generate(Data, seed);
                worker.WaitFor($"batch {seed - 1}:");
            }

            worker.Signal("TERM");
            Assert.True(worker.Process.WaitForExit(Patience));
        }

        var rewound = SessionizeProcess.Ok(Data, "run", "--from-batch", "2", "--max-files-per-batch", "1").Out;
        Assert.Contains("batch 2:", rewound);
        Assert.Contains("batch 3:", rewound);

        using (var worker = new RunningWorker(Data))
        {
            worker.WaitFor("worker: polling");
            Generate(Data, 5);
            worker.WaitFor("batch 4:");
        }

        await AssertSameTables(Reference(5), Data);
    }

    public void Dispose() => _temp.Dispose();
}
