"""Reference values for chimeraforge-report's `stats` unit tests.

Computed independently of the Rust code with numpy/scipy. Run:
    python3 -m venv /tmp/statsvenv && /tmp/statsvenv/bin/pip install scipy numpy
    /tmp/statsvenv/bin/python crates/report/reference/stats_reference.py
The printed values are hard-coded in the tests next to each Rust module.
"""
import numpy as np
import scipy
import scipy.stats as st
from scipy.special import gammaln

print(f"numpy {np.__version__}, scipy {scipy.__version__}")
def R(v):
    return repr(float(v))


# Seed report, per-run efficiencies (%): Gemma 3 baseline.
RUST = np.array([97.46, 98.45, 95.70, 96.24, 98.72])
PY = np.array([60.12, 84.07, 87.51, 83.94, 85.54])
# A sample with ties (made up, small integers).
TIES_A = np.array([3, 4, 2, 6, 2, 5, 4, 4, 7, 3], dtype=float)
TIES_B = np.array([6, 5, 7, 4, 8, 6, 9, 5, 7, 6, 8], dtype=float)
# Ten values for percentiles.
TEN = np.array([12.5, 3.0, 7.25, 100.0, 41.0, 8.0, 8.0, 15.5, 0.5, 64.0])


def summary(name, x):
    print(f"--- summary {name}")
    print("mean", R(np.mean(x)), "median", R(np.median(x)))
    print("std ddof=1", R(np.std(x, ddof=1)), "cv", R(np.std(x, ddof=1) / np.mean(x)))
    for q in (0, 25, 50, 90, 99, 100):
        print(f"numpy.percentile(x, {q})", R(np.percentile(x, q)))


summary("RUST", RUST)
summary("PY", PY)
summary("TEN", TEN)


def compare(name, a, b):
    print(f"=== compare {name}")
    r = st.ttest_ind(a, b, equal_var=False)
    print("ttest_ind(a, b, equal_var=False): t", R(r.statistic), "p", R(r.pvalue), "df", R(r.df))
    for method in ("exact", "asymptotic"):
        try:
            r = st.mannwhitneyu(a, b, alternative="two-sided", method=method)
            print(f"mannwhitneyu(a, b, alternative='two-sided', method='{method}'): U", R(r.statistic), "p", R(r.pvalue))
        except Exception as e:  # noqa: BLE001
            print(method, "failed", e)
    na, nb = len(a), len(b)
    sp = np.sqrt(((na - 1) * np.var(a, ddof=1) + (nb - 1) * np.var(b, ddof=1)) / (na + nb - 2))
    d = (np.mean(a) - np.mean(b)) / sp
    df = na + nb - 2
    j = np.exp(gammaln(df / 2) - gammaln((df - 1) / 2)) / np.sqrt(df / 2)
    print("cohen d (pooled sd, numpy)", R(d), "hedges g exact J (scipy.special.gammaln)", R(d * j))
    cliff = (np.sign(a[:, None] - b[None, :])).sum() / (na * nb)
    print("cliff delta (brute force numpy.sign)", R(cliff))


compare("RUST vs PY", RUST, PY)
compare("TIES_A vs TIES_B", TIES_A, TIES_B)
# No ties, sizes 12 and 15: exact distribution beyond scipy's 'auto' limit of 8.
M12 = np.array([1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30, 2.01, 0.91, 2.22])
M15 = np.array([0.878, 0.647, 0.598, 2.051, 1.061, 1.291, 1.062, 3.141, 1.292, 1.711, 0.441, 1.191, 1.331, 2.571, 0.731])
print("M15 has ties:", len(np.unique(np.concatenate([M12, M15]))) != 27)
compare("M12 vs M15", M12, M15)
# Larger, no ties: sizes 21 and 25 -> asymptotic.
rng = np.random.default_rng(7)
L21 = np.round(rng.normal(10, 2, 21), 3)
L25 = np.round(rng.normal(11, 3, 25), 3)
print("L21 =", [float(v) for v in L21])
print("L25 =", [float(v) for v in L25])
print("L has ties:", len(np.unique(np.concatenate([L21, L25]))) != 46)
compare("L21 vs L25", L21, L25)

print("=== correlation")
for name, x, y in [("RUST, PY", RUST, PY), ("TIES_A, TIES_B[:10]", TIES_A, TIES_B[:10])]:
    r = st.pearsonr(x, y)
    print(f"pearsonr({name}): r", R(r.statistic), "p", R(r.pvalue))
    r = st.spearmanr(x, y)
    print(f"spearmanr({name}): rho", R(r.statistic), "p", R(r.pvalue))

print("=== anova")
# scipy.stats.f_oneway docstring example (mussel shell measurements).
tillamook = [0.0571, 0.0813, 0.0831, 0.0976, 0.0817, 0.0859, 0.0735, 0.0659, 0.0923, 0.0836]
newport = [0.0873, 0.0662, 0.0672, 0.0819, 0.0749, 0.0649, 0.0835, 0.0725]
petersburg = [0.0974, 0.1352, 0.0817, 0.1016, 0.0968, 0.1064, 0.105]
magadan = [0.1033, 0.0915, 0.0781, 0.0685, 0.0677, 0.0697, 0.0764, 0.0689]
tvarminne = [0.0703, 0.1026, 0.0956, 0.0973, 0.1039, 0.1045]
groups = [tillamook, newport, petersburg, magadan, tvarminne]
for name, gs in [("mussels", groups), ("RUST, PY", [RUST, PY]), ("RUST, PY, TIES_A", [RUST, PY, TIES_A])]:
    r = st.f_oneway(*gs)
    allv = np.concatenate(gs)
    grand = allv.mean()
    ssb = sum(len(g) * (np.mean(g) - grand) ** 2 for g in gs)
    ssw = sum(((np.asarray(g) - np.mean(g)) ** 2).sum() for g in gs)
    sst = ((allv - grand) ** 2).sum()
    print(f"f_oneway({name}): F", R(r.statistic), "p", R(r.pvalue))
    print("  ss_between", R(ssb), "ss_within", R(ssw), "ss_total", R(sst), "eta2", R(ssb / sst))

print("=== jain")
for name, x in [("RUST", RUST), ("[1, 2, 3, 4]", np.array([1.0, 2, 3, 4]))]:
    print(f"jain({name}) = sum(x)**2 / (n * sum(x**2))", R(x.sum() ** 2 / (len(x) * (x**2).sum())))

print("=== bootstrap (loose comparison only: different RNG)")
for name, x in [("RUST", RUST), ("PY", PY)]:
    r = st.bootstrap((x,), np.mean, method="percentile", n_resamples=10000, random_state=1)
    print(f"bootstrap(({name},), np.mean, method='percentile'): ", R(r.confidence_interval.low), R(r.confidence_interval.high))
r = st.bootstrap((RUST, PY), lambda a, b, axis=-1: np.mean(a, axis=axis) - np.mean(b, axis=axis),
                 method="percentile", n_resamples=10000, random_state=1)
print("bootstrap((RUST, PY), mean(a)-mean(b), method='percentile'):", R(r.confidence_interval.low), R(r.confidence_interval.high))
