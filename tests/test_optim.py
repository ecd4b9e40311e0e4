"""The superset optimizer: every member's rule equals the plain optax optimizer, step by step, under jit."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.extend.core import ClosedJaxpr, Jaxpr

from vtune.hparams import OPTIMIZERS
from vtune.optim import FUSE_RULES, OPTIMIZER_IDS, buffers_used, init_state_for, population_optimizer, reference_optax

STEPS = 20
# Hyperparameters away from the defaults (so a swapped β₁/β₂/ρ/ε shows), one set per rule.
HP = {
    "sgd": dict(learning_rate=0.05),
    "momentum": dict(learning_rate=0.05, momentum=0.8),
    "nesterov": dict(learning_rate=0.05, momentum=0.7),
    "rmsprop": dict(learning_rate=0.01, rho=0.8, eps=1e-4),
    "adam": dict(learning_rate=0.02, momentum=0.85, beta2=0.95, eps=1e-4),
    "adamw": dict(learning_rate=0.02, momentum=0.8, beta2=0.97, eps=1e-5),
    "adagrad": dict(learning_rate=0.1, eps=1e-4),
    "adadelta": dict(learning_rate=1.0, rho=0.8, eps=1e-4),
    "adamax": dict(learning_rate=0.02, momentum=0.75, beta2=0.9, eps=1e-4),
    "nadam": dict(learning_rate=0.02, momentum=0.8, beta2=0.95, eps=1e-4),
}
DEFAULTS = dict(momentum=0.9, beta2=0.999, rho=0.9, eps=1e-8)


def _hp(name: str, weight_decay: float) -> dict:
    return {**DEFAULTS, **HP[name], "weight_decay": weight_decay}


def _schedule(lr0):
    # A learning rate that changes every step, the same function for both sides.
    return lambda count: lr0 * 0.95 ** jnp.asarray(count, jnp.float32)


# ---------------------------------------------------------------------------------- losses
def _quadratic_init():
    return {"w": jnp.linspace(-1.0, 2.0, 12, dtype=jnp.float32).reshape(4, 3),
            "b": jnp.array([0.5, -0.3, 0.1], jnp.float32)}


def quadratic(params):
    # Curvatures from 0.1 to 5 so that the adaptive rules differ from plain SGD.
    a_w = jnp.linspace(0.1, 5.0, 12, dtype=jnp.float32).reshape(4, 3)
    c_w = jnp.linspace(1.0, -1.0, 12, dtype=jnp.float32).reshape(4, 3)
    return 0.5 * jnp.sum(a_w * (params["w"] - c_w) ** 2) + 0.5 * jnp.sum(3.0 * (params["b"] + 1.0) ** 2)


_NP = np.random.default_rng(0)
_X = jnp.asarray(_NP.normal(size=(16, 4)), jnp.float32)
_Y = jnp.arange(16) % 3
_W1 = _NP.normal(size=(4, 5)).astype(np.float32) * 0.5
_W2 = _NP.normal(size=(5, 3)).astype(np.float32) * 0.5


def _mlp_init():
    return {"w1": jnp.asarray(_W1), "b1": jnp.zeros(5), "w2": jnp.asarray(_W2), "b2": jnp.zeros(3)}


def tiny_mlp(params):
    h = jnp.tanh(_X @ params["w1"] + params["b1"][None, :])
    logits = h @ params["w2"] + params["b2"][None, :]
    return optax.softmax_cross_entropy_with_integer_labels(logits, _Y).mean()


PROBLEMS = {"quadratic": (quadratic, _quadratic_init), "tiny_mlp": (tiny_mlp, _mlp_init)}


def _decay_mask(params):
    return {k: k.startswith("w") for k in params}


# ---------------------------------------------------------------------------------- both sides
def _population_hparams(weight_decay: float) -> dict:
    names = list(OPTIMIZERS)
    hps = {k: jnp.array([_hp(n, weight_decay)[k] for n in names], jnp.float32)
           for k in ("learning_rate", "momentum", "beta2", "rho", "eps", "weight_decay")}
    hps["optimizer"] = jnp.array([OPTIMIZER_IDS[n] for n in names], jnp.int32)
    return hps


def _population_trajectory(problem: str, weight_decay: float):
    """All ten rules as one vmapped population (one member each): params after every step."""
    return _population_program(problem)(_population_hparams(weight_decay))


def _member(problem: str, optimizers=OPTIMIZERS, fuse=False):
    """One member's trajectory (params after every step) as a function of its hyperparameters."""
    loss, init = PROBLEMS[problem]
    params0 = init()
    opt = population_optimizer(optimizers=optimizers, decay_mask=_decay_mask(params0), fuse=fuse)

    def member(hp):
        params = params0
        state = init_state_for(opt, params, hp["optimizer"])

        def step(carry, _):
            params, state = carry
            lr = _schedule(hp["learning_rate"])(state.count)
            updates, state = opt.update(jax.grad(loss)(params), state, params, hparams=hp, learning_rate=lr)
            params = optax.apply_updates(params, updates)
            return (params, state), params

        return jax.lax.scan(step, (params, state), None, length=STEPS)[1]

    return member


@functools.lru_cache(maxsize=None)
def _population_program(problem: str):
    """The jitted population of one problem (weight decay and every knob are data: one compile)."""
    return jax.jit(jax.vmap(_member(problem)))  # leaves [P, STEPS, ...]


@functools.lru_cache(maxsize=None)
def _alone_program(problem: str):
    """The same members one after another (``lax.map``): each optimizer id is a scalar, so the update is a
    real conditional that runs only the member's rule (the CPU engine's path)."""
    return jax.jit(lambda hps: jax.lax.map(_member(problem), hps))


#: The rules in groups of FUSE_RULES: a member alone with one of these rule sets computes all of them and
#: selects its own (vtune.choose.choose with fused=True), the path a search with few optimizers compiles.
FUSED_GROUPS = [OPTIMIZERS[i:i + FUSE_RULES] for i in range(0, len(OPTIMIZERS), FUSE_RULES)]


@functools.lru_cache(maxsize=None)
def _fused_programs(problem: str):
    return [jax.jit(lambda hps, group=group: jax.lax.map(_member(problem, group, fuse=True), hps)) for group in FUSED_GROUPS]


def _fused_trajectories(problem: str, weight_decay: float) -> dict:
    """``{rule: params after every step}`` of each rule's member alone, in its group of FUSE_RULES rules."""
    out = {}
    for group, program in zip(FUSED_GROUPS, _fused_programs(problem)):
        hps = _population_hparams(weight_decay)
        rows = np.array([OPTIMIZERS.index(n) for n in group])
        result = program(jax.tree.map(lambda x: x[rows], hps))
        out.update({n: jax.tree.map(lambda x, k=k: x[k], result) for k, n in enumerate(group)})
    return out


def _cond_branches(jaxpr) -> list[int]:
    """The branch count of every ``cond`` in ``jaxpr`` (a Jaxpr or ClosedJaxpr), nested ones included."""
    jaxpr = jaxpr.jaxpr if isinstance(jaxpr, ClosedJaxpr) else jaxpr
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "cond":
            found.append(len(eqn.params["branches"]))
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(sub, (ClosedJaxpr, Jaxpr)):
                    found += _cond_branches(sub)
    return found


def _plain_optax(name: str, lr, hp: dict, mask) -> optax.GradientTransformation:
    """The plain optax optimizer of each rule, written here from optax's public aliases (L2 = weight decay
    added to the gradient before the rule; adamw: optax.adamw's decoupled decay)."""
    b1, b2, rho, eps, lam = hp["momentum"], hp["beta2"], hp["rho"], hp["eps"], hp["weight_decay"]
    if name == "adamw":
        return optax.adamw(lr, b1=b1, b2=b2, eps=eps, weight_decay=lam, mask=mask)
    rule = {
        "sgd": lambda: optax.sgd(lr),
        "momentum": lambda: optax.sgd(lr, momentum=b1),
        "nesterov": lambda: optax.sgd(lr, momentum=b1, nesterov=True),
        "rmsprop": lambda: optax.rmsprop(lr, decay=rho, eps=eps),
        "adam": lambda: optax.adam(lr, b1=b1, b2=b2, eps=eps),
        "adagrad": lambda: optax.adagrad(lr, eps=eps),
        "adadelta": lambda: optax.adadelta(lr, rho=rho, eps=eps),
        "adamax": lambda: optax.adamax(lr, b1=b1, b2=b2, eps=eps),
        "nadam": lambda: optax.nadam(lr, b1=b1, b2=b2, eps=eps),
    }[name]()
    return optax.chain(optax.add_decayed_weights(lam, mask=mask), rule)


@functools.lru_cache(maxsize=None)
def _optax_program(problem: str):
    """Each rule's plain optax optimizer, and ``reference_optax``'s, under one jit: params after every step."""
    loss, init = PROBLEMS[problem]
    params0 = init()

    def trajectory(opt):
        def step(carry, _):
            params, state = carry
            updates, state = opt.update(jax.grad(loss)(params), state, params)
            params = optax.apply_updates(params, updates)
            return (params, state), params

        return jax.lax.scan(step, (params0, opt.init(params0)), None, length=STEPS)[1]

    # Compiled fast (XLA -O0): this side is the yardstick, its speed does not matter.
    @functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
    def run(lam):
        plain, ref = {}, {}
        for name in OPTIMIZERS:
            hp = dict(_hp(name, 0.0), weight_decay=lam)
            schedule = _schedule(jnp.float32(hp["learning_rate"]))
            plain[name] = trajectory(_plain_optax(name, schedule, hp, _decay_mask(params0)))
            ref[name] = trajectory(reference_optax(name, schedule, hp, decay_mask=_decay_mask(params0)))
        return plain, ref

    return run


@pytest.fixture(scope="module", params=[(p, wd) for p in PROBLEMS for wd in (0.0, 0.01)],
                ids=lambda p: f"{p[0]}-wd{p[1]}")
def trajectories(request):
    problem, weight_decay = request.param
    loss, init = PROBLEMS[problem]
    alone = _alone_program(problem)(_population_hparams(weight_decay))
    return (problem, loss, init(), weight_decay, _population_trajectory(problem, weight_decay), alone,
            _optax_program(problem)(jnp.float32(weight_decay)), _fused_trajectories(problem, weight_decay))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_member_rule_equals_plain_optax(trajectories, name):
    problem, loss, params0, weight_decay, population, alone, (plain, ref), fused = trajectories
    i = OPTIMIZERS.index(name)
    ours = jax.tree.map(lambda x: x[i], population)
    # The quadratic's gradients are the same arithmetic on both sides; the MLP's come from differently
    # fused (vmapped vs plain) programs, and adaptive rules amplify a last-bit gradient difference where
    # the gradient is tiny.
    rtol, atol = (2e-6, 1e-7) if problem == "quadratic" else (1e-5, 1e-6)
    for key in params0:
        np.testing.assert_allclose(ours[key], plain[name][key], rtol=rtol, atol=atol,
                                   err_msg=f"{name}, {key}, weight_decay={weight_decay}")
        # The member alone (its rule's branch of the conditional) follows the same path.
        np.testing.assert_allclose(alone[key][i], plain[name][key], rtol=rtol, atol=atol,
                                   err_msg=f"{name} alone, {key}, weight_decay={weight_decay}")
        # So does the member alone among a few rules, all computed and its own selected.
        np.testing.assert_allclose(fused[name][key], plain[name][key], rtol=rtol, atol=atol,
                                   err_msg=f"{name} alone, fused, {key}, weight_decay={weight_decay}")
        # vtune.optim.reference_optax (which the training tests use) is that same optimizer.
        np.testing.assert_array_equal(ref[name][key], plain[name][key], err_msg=f"reference_optax({name!r})")
    # The rule did something: the loss moved, and weight decay changed the trajectory when on.
    final = jax.tree.map(lambda x: x[-1], ours)
    assert float(loss(final)) != pytest.approx(float(loss(params0)), rel=1e-3)


def test_weight_decay_changes_every_rule_on_weights_only():
    off = _population_trajectory("quadratic", 0.0)
    on = _population_trajectory("quadratic", 0.05)
    for i, name in enumerate(OPTIMIZERS):
        assert not np.allclose(on["w"][i, -1], off["w"][i, -1], rtol=1e-5), name
        # The quadratic is separable, so the biases (never decayed) follow exactly the same path.
        np.testing.assert_array_equal(on["b"][i], off["b"][i], err_msg=f"{name}: a bias was decayed")


def test_restricted_rule_set_matches_the_full_superset():
    params0 = _quadratic_init()
    grads = jax.grad(quadratic)(params0)
    hp = {k: jnp.float32(v) for k, v in _hp("adam", 0.01).items()}
    hp["optimizer"] = jnp.int32(OPTIMIZER_IDS["adam"])
    full = population_optimizer(decay_mask=_decay_mask(params0))
    only = population_optimizer(optimizers=("adam",), decay_mask=_decay_mask(params0))
    u_full, _ = full.update(grads, init_state_for(full, params0, hp["optimizer"]), params0, hparams=hp,
                            learning_rate=0.1)
    u_only, _ = only.update(grads, init_state_for(only, params0, hp["optimizer"]), params0, hparams=hp,
                            learning_rate=0.1)
    jax.tree.map(np.testing.assert_array_equal, u_full, u_only)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_rule_set_keeps_only_the_buffers_its_rules_read(name):
    """Restricted to one rule, the state holds only that rule's buffers (None for the rest), and three
    updates give the same numbers as the full superset, which carries every buffer."""
    params0 = _quadratic_init()
    hp = {k: jnp.float32(v) for k, v in _hp(name, 0.01).items()}
    hp["optimizer"] = jnp.int32(OPTIMIZER_IDS[name])
    full = population_optimizer(decay_mask=_decay_mask(params0))
    only = population_optimizer(optimizers=(name,), decay_mask=_decay_mask(params0))
    s_full = init_state_for(full, params0, hp["optimizer"])
    s_only = init_state_for(only, params0, hp["optimizer"])
    reads = {"sgd": set(), "momentum": {"m"}, "nesterov": {"m"}, "rmsprop": {"v"}, "adagrad": {"v"},
             "adadelta": {"v", "w"}}.get(name, {"m", "v"})
    assert {b for b in ("m", "v", "w") if getattr(s_only, b) is not None} == reads
    assert buffers_used((name,)) == {b: b in reads for b in ("m", "v", "w")}
    p_full = p_only = params0
    for _ in range(3):
        grads = jax.grad(quadratic)(p_full)
        u_full, s_full = full.update(grads, s_full, p_full, hparams=hp, learning_rate=0.1)
        u_only, s_only = only.update(jax.grad(quadratic)(p_only), s_only, p_only, hparams=hp, learning_rate=0.1)
        p_full, p_only = optax.apply_updates(p_full, u_full), optax.apply_updates(p_only, u_only)
    # The superset runs its rule inside a compiled conditional, the single rule op by op: last-bit
    # differences from fused multiply-adds, nothing more.
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), p_full, p_only)


def test_a_member_alone_runs_only_its_own_rule():
    # Unbatched, the optimizer id is a scalar: the update of each leaf is one ``cond`` over the allowed
    # rules (only the member's branch runs), unless a fused optimizer has at most FUSE_RULES of them. Under vmap it is a select over every rule; with one rule, no choice.
    params0 = _quadratic_init()
    grads = jax.grad(quadratic)(params0)
    hp = {k: jnp.float32(v) for k, v in _hp("adam", 0.01).items()}
    hp["optimizer"] = jnp.int32(OPTIMIZER_IDS["adam"])

    def cond_branches(optimizers, batched=False, fuse=False):
        opt = population_optimizer(optimizers=optimizers, decay_mask=_decay_mask(params0), fuse=fuse)

        def update(hp):
            state = init_state_for(opt, params0, hp["optimizer"])
            return opt.update(grads, state, params0, hparams=hp, learning_rate=0.1)

        if batched:
            return _cond_branches(jax.make_jaxpr(jax.vmap(update))(jax.tree.map(lambda x: x[None], hp)))
        return _cond_branches(jax.make_jaxpr(update)(hp))

    assert len(OPTIMIZERS) > FUSE_RULES
    assert cond_branches(OPTIMIZERS) == [len(OPTIMIZERS)] * len(params0)
    # Fused, a few rules are all computed and selected (no conditional); one rule: no choice.
    assert cond_branches(OPTIMIZERS[:FUSE_RULES]) == [FUSE_RULES] * len(params0)
    assert cond_branches(OPTIMIZERS[:FUSE_RULES], fuse=True) == []
    assert cond_branches(OPTIMIZERS, fuse=True) == [len(OPTIMIZERS)] * len(params0)
    assert cond_branches(("adam",)) == []
    assert cond_branches(OPTIMIZERS, batched=True) == []


def test_unknown_rule_is_rejected():
    with pytest.raises(ValueError, match="lion"):
        population_optimizer(optimizers=("adam", "lion"))
