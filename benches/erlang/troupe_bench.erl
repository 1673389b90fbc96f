%% Erlang/OTP baseline for the Troupe benchmarks.
%%
%% Run (after `erlc troupe_bench.erl`):
%%   erl -noshell +S N +P 2097152 -pa DIR -s troupe_bench main <workload> [key=value ...] -s init stop
%% Prints exactly one JSON line (see benches/README.md) and halts.
%% Timings use erlang:monotonic_time/1 and exclude VM start-up.
-module(troupe_bench).
-export([main/1, idle_wait/0]).

-define(XORSHIFT_SEED, 2463534242).

main(Args) ->
    Code =
        try
            [W | Raw] = [atom_to_list(A) || A <- Args],
            Workload = list_to_atom(W),
            Params = params(Workload, Raw),
            {Value, Unit, ElapsedMs, Extra} = run(Workload, Params),
            emit([{system, <<"erlang">>},
                  {workload, list_to_binary(W)},
                  {threads, erlang:system_info(schedulers_online)},
                  {params, {obj, Params}},
                  {value, Value},
                  {unit, list_to_binary(Unit)},
                  {elapsed_ms, ElapsedMs},
                  {otp_release, list_to_binary(erlang:system_info(otp_release))}
                  | Extra]),
            0
        catch
            Class:Reason:Stack ->
                io:format(standard_error, "troupe_bench failed: ~p:~p~n~p~n",
                          [Class, Reason, Stack]),
                1
        end,
    %% halt/1 directly: no need to shut down up to a million idle processes.
    erlang:halt(Code).

%% ---------------------------------------------------------------- parameters

defaults(spawn) -> [{n, 100000}];
defaults(idle) -> [{n, 100000}, {hibernate, 0}];
defaults(pingpong) -> [{rounds, 1000000}];
defaults(ring) -> [{procs, 10000}, {laps, 100}];
defaults(fanin) -> [{producers, 1000}, {msgs, 1000}];
defaults(payload) -> [{size, 1024}, {rounds, 100000}];
defaults(preemption) -> [{iters, 200000000}];
defaults(W) -> error({unknown_workload, W}).

params(Workload, Raw) ->
    lists:foldl(
      fun(KV, Acc) ->
              [K, V] = string:split(KV, "="),
              Key = list_to_atom(K),
              lists:keymember(Key, 1, Acc) orelse error({unknown_param, Key}),
              N = list_to_integer(V),
              case lists:member(Key, switches()) of
                  true -> N =:= 0 orelse N =:= 1 orelse error({param_must_be_0_or_1, Key});
                  false -> N > 0 orelse error({param_must_be_positive, Key})
              end,
              lists:keystore(Key, 1, Acc, {Key, N})
      end, defaults(Workload), Raw).

%% Parameters that are switches, 0 or 1, rather than positive integers.
switches() -> [hibernate].

p(Key, Params) -> element(2, lists:keyfind(Key, 1, Params)).

%% ------------------------------------------------------------------- timing

now_ns() -> erlang:monotonic_time(nanosecond).
ms(Ns) -> Ns / 1.0e6.
secs(Ns) -> Ns / 1.0e9.

%% ----------------------------------------------------------------- workloads

run(spawn, P) ->
    N = p(n, P),
    C = counters:new(1, [write_concurrency]),
    T0 = now_ns(),
    spawn_n(N, fun() -> counters:add(C, 1, 1) end),
    T1 = now_ns(),
    wait_counter(C, N),
    T2 = now_ns(),
    Total = T2 - T0,
    {Total / 1000 / N, "us/spawn", ms(Total),
     [{spawn_call_us, (T1 - T0) / 1000 / N}, {total_ms, ms(Total)}]};

%% hibernate=1: the children wait in erlang:hibernate/3 (heap shrunk to
%% fit, stack discarded) rather than in a plain receive.
run(idle, P) ->
    N = p(n, P),
    Hibernate = p(hibernate, P) =:= 1,
    C = counters:new(1, [write_concurrency]),
    Child = case Hibernate of
                true -> fun() -> counters:add(C, 1, 1),
                                 erlang:hibernate(?MODULE, idle_wait, []) end;
                false -> fun() -> counters:add(C, 1, 1), idle_wait() end
            end,
    garbage_collect(),
    RssBefore = rss_bytes(),
    PssBefore = pss_bytes(),
    MemBefore = erlang:memory(total),
    T0 = now_ns(),
    Pids = [spawn(Child) || _ <- lists:seq(1, N)],
    wait_counter(C, N),
    T1 = now_ns(),
    %% A child that counted itself but has not hibernated yet (on another
    %% scheduler) does now, as the Troupe guest waits for its own.
    Hibernate andalso timer:sleep(20),
    RssAfter = rss_bytes(),
    PssAfter = pss_bytes(),
    MemAfter = erlang:memory(total),
    length(Pids) =:= N orelse error(lost_pids),
    {max(0, RssAfter - RssBefore) / N, "bytes/proc", ms(T1 - T0),
     [{spawn_rate, N / secs(T1 - T0)},
      {erlang_memory_bytes_per_proc, (MemAfter - MemBefore) / N},
      {pss_bytes_per_proc, max(0, PssAfter - PssBefore) / N},
      {rss_before_kb, RssBefore div 1024},
      {rss_after_kb, RssAfter div 1024}]};

run(pingpong, P) ->
    Rounds = p(rounds, P),
    Ns = bounce(Rounds, 0),
    {Rounds / secs(Ns), "roundtrips/s", ms(Ns), [{rtt_ns, Ns / Rounds}]};

run(payload, P) ->
    Size = p(size, P),
    Rounds = p(rounds, P),
    Ns = bounce(Rounds, binary:copy(<<7>>, Size)),
    {2 * Rounds * Size / secs(Ns), "bytes/s", ms(Ns),
     [{roundtrips_per_s, Rounds / secs(Ns)}]};

run(ring, P) ->
    Procs = p(procs, P),
    Laps = p(laps, P),
    Hops = Procs * Laps,
    Self = self(),
    S0 = now_ns(),
    Pids = [spawn(fun() -> receive {next, Next} -> ring_node(Next, Self) end end)
            || _ <- lists:seq(1, Procs)],
    [First | _] = Pids,
    lists:foreach(fun({Pid, Next}) -> Pid ! {next, Next} end,
                  lists:zip(Pids, tl(Pids) ++ [First])),
    S1 = now_ns(),
    T0 = now_ns(),
    First ! Hops,
    receive ring_done -> ok end,
    T1 = now_ns(),
    {Hops / secs(T1 - T0), "msgs/s", ms(T1 - T0), [{setup_ms, ms(S1 - S0)}]};

run(fanin, P) ->
    Producers = p(producers, P),
    Msgs = p(msgs, P),
    Self = self(),
    T0 = now_ns(),
    spawn_n(Producers, fun() -> produce(Self, Msgs) end),
    consume(Producers * Msgs),
    T1 = now_ns(),
    {Producers * Msgs / secs(T1 - T0), "msgs/s", ms(T1 - T0), []};

%% The xorshift32 loop of the Rust guests, timed alone, then while
%% 2*Schedulers-1 other processes spin on it (fair share: half a scheduler).
run(preemption, P) ->
    Iters = p(iters, P),
    T0 = now_ns(),
    Sum = xorshift32(?XORSHIFT_SEED, Iters),
    T1 = now_ns(),
    Self = self(),
    NSpin = 2 * erlang:system_info(schedulers_online) - 1,
    Spinners = [spawn(fun() -> Self ! spinning, spin(?XORSHIFT_SEED) end)
                || _ <- lists:seq(1, NSpin)],
    [receive spinning -> ok end || _ <- Spinners],
    T2 = now_ns(),
    Sum = xorshift32(?XORSHIFT_SEED, Iters),
    T3 = now_ns(),
    [S ! stop || S <- Spinners],
    Alone = T1 - T0,
    Shared = T3 - T2,
    {ms(Alone), "ms", ms(Alone),
     [{shared_ms, ms(Shared)}, {slowdown, Shared / Alone}, {spinners, NSpin},
      {ns_per_iter, Alone / Iters}, {checksum, Sum}]};

run(W, _) ->
    error({unknown_workload, W}).

xorshift32(X, 0) -> X;
xorshift32(X, N) ->
    X1 = (X bxor (X bsl 13)) band 16#FFFFFFFF,
    X2 = X1 bxor (X1 bsr 17),
    X3 = (X2 bxor (X2 bsl 5)) band 16#FFFFFFFF,
    xorshift32(X3, N - 1).

%% Spin on the loop, never blocking; check for `stop` now and then.
spin(X) ->
    X1 = xorshift32(X, 1 bsl 20),
    receive stop -> ok after 0 -> spin(X1) end.

%% An idle process's wait (the hibernated ones wake into it, and never do).
idle_wait() -> receive stop -> ok end.

spawn_n(0, _F) -> ok;
spawn_n(N, F) -> spawn(F), spawn_n(N - 1, F).

%% Wait until counter C reaches N, letting the other processes run.
wait_counter(C, N) ->
    case counters:get(C, 1) >= N of
        true -> ok;
        false -> erlang:yield(), wait_counter(C, N)
    end.

%% Ping-pong `Rounds` round trips of Msg between two fresh processes;
%% returns elapsed nanoseconds as measured by the ping side.
bounce(Rounds, Msg) ->
    Self = self(),
    Pong = spawn(fun pong/0),
    spawn(fun() ->
                  T0 = now_ns(),
                  ping(Rounds, Pong, Msg),
                  T1 = now_ns(),
                  Pong ! stop,
                  Self ! {bounced, T1 - T0}
          end),
    receive {bounced, Ns} -> Ns end.

ping(0, _Pong, _Msg) -> ok;
ping(N, Pong, Msg) ->
    Pong ! {self(), Msg},
    receive {pong, Reply} -> ping(N - 1, Pong, Reply) end.

pong() ->
    receive
        {From, Msg} -> From ! {pong, Msg}, pong();
        stop -> ok
    end.

ring_node(Next, Main) ->
    receive
        0 -> Main ! ring_done;
        K -> Next ! K - 1, ring_node(Next, Main)
    end.

produce(_To, 0) -> ok;
produce(To, N) -> To ! {msg, N}, produce(To, N - 1).

consume(0) -> ok;
consume(N) -> receive {msg, _} -> consume(N - 1) end.

%% VmRSS of this OS process, in bytes.
rss_bytes() ->
    {ok, Status} = file:read_file("/proc/" ++ os:getpid() ++ "/status"),
    {match, [Kb]} = re:run(Status, "VmRSS:\\s+([0-9]+)", [{capture, all_but_first, list}]),
    list_to_integer(Kb) * 1024.

%% Proportional set size (Pss of smaps_rollup) of this OS process, in bytes;
%% 0 if the kernel does not provide it.
pss_bytes() ->
    case file:read_file("/proc/" ++ os:getpid() ++ "/smaps_rollup") of
        {ok, Rollup} ->
            case re:run(Rollup, "Pss:\\s+([0-9]+)", [{capture, all_but_first, list}]) of
                {match, [Kb]} -> list_to_integer(Kb) * 1024;
                nomatch -> 0
            end;
        {error, _} -> 0
    end.

%% ------------------------------------------------------------- JSON output

emit(Fields) ->
    io:put_chars([json({obj, Fields}), $\n]).

json({obj, Fields}) ->
    ["{", lists:join(",", [[json_key(K), ":", json(V)] || {K, V} <- Fields]), "}"];
json(B) when is_binary(B) -> [$", B, $"];
json(I) when is_integer(I) -> integer_to_list(I);
json(F) when is_float(F) -> float_to_list(F, [{decimals, 6}, compact]).

json_key(K) -> [$", atom_to_list(K), $"].
