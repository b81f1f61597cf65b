using Sessionization.Domain;

namespace Sessionization.Tests.Domain;

public sealed class BackoffTests
{
    private static readonly TimeSpan Initial = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Max = TimeSpan.FromMinutes(5);

    [Theory]
    [InlineData(0, 0)]
    [InlineData(1, 1)]
    [InlineData(2, 2)]
    [InlineData(3, 4)]
    [InlineData(9, 256)]
    [InlineData(10, 300)]
    [InlineData(1_000, 300)]
    [InlineData(int.MaxValue, 300)]
    public void The_wait_doubles_with_each_failure_in_a_row_up_to_the_cap(int failures, int seconds)
    {
        Assert.Equal(TimeSpan.FromSeconds(seconds), Backoff.Delay(failures, Initial, Max));
    }
}
