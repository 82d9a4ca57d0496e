"""Special-function lowerings: error-function family, Bessel functions, gamma family, zeta.

PyTorch evaluates these with finite approximations (piecewise polynomials, Chebyshev series,
asymptotic expansions, fixed recurrences), so each one is a fixed composition of NNEF element-wise
ops here too. Every branch is computed for every element and `select` keeps the right one, so a
branch may produce inf/nan where it is not used. Coefficients are the published Cephes ones (the
Chebyshev series trimmed to float32 precision), except erfcx's series, fitted for this module.
The approximations aim at float32 accuracy.
"""
from __future__ import annotations

import math

from ..registry import lower
from .common import literal
from .elementwise import erf

# --- helpers ---------------------------------------------------------------------------------


def _float(b, x):
    """Return x in the node's output dtype (integer inputs are promoted, as PyTorch does)."""
    return b.cast(x, b.out_dtype)


def _where(b, condition, then, otherwise):
    """select() that also takes Python floats as branches (as constants of the output dtype)."""
    then, otherwise = (v if hasattr(v, "name") else b.const(v, b.out_dtype, "c") for v in (then, otherwise))
    return b.op("select", condition, then, otherwise)


def _cases(b, cases, otherwise):
    """Piecewise value: the first (condition, value) pair whose condition holds, else `otherwise`."""
    out = otherwise
    for condition, value in reversed(cases):
        out = _where(b, condition, value, out)
    return out


def _polevl(b, x, coeffs):
    """Evaluate c[0] x^n + ... + c[n] by Horner's rule."""
    acc = b.op("add", b.op("mul", x, literal(coeffs[0])), literal(coeffs[1]))
    for c in coeffs[2:]:
        acc = b.op("add", b.op("mul", acc, x), literal(c))
    return acc


def _ratio(b, x, num, den):
    """num(x) / den(x), two polynomials evaluated by Horner's rule."""
    return b.op("div", _polevl(b, x, num), _polevl(b, x, den))


def _chbevl(b, x, coeffs):
    """Sum a Chebyshev series in Cephes' convention (highest order first, x in [-2, 2]) by Clenshaw's recurrence."""
    b1, b2 = literal(coeffs[0]), 0.0
    b0 = b.op("add", b.op("mul", x, b1), literal(coeffs[1]))
    for c in coeffs[2:]:
        b2, b1 = b1, b0
        if hasattr(b2, "name"):
            b0 = b.op("add", b.op("sub", b.op("mul", x, b1), b2), literal(c))
        else:
            b0 = b.op("add", b.op("mul", x, b1), literal(c - b2))
    return b.op("mul", b.op("sub", b0, b2), 0.5)


def _isnan(b, x):
    return b.op("ne", x, x)


def _log1p(b, x):
    """log(1 + x), accurate for tiny x: log(u) * x / (u - 1) with u = 1 + x (x itself when u rounds to 1)."""
    u = b.op("add", x, 1.0)
    scaled = b.op("mul", b.op("log", u), b.op("div", x, b.op("sub", u, 1.0)))
    return _where(b, b.op("eq", u, 1.0), x, scaled)


# --- error function family -----------------------------------------------------------------

ERFINV_CENTRAL = ((-0.140543331, 0.914624893, -1.645349621, 0.886226899),
                  (0.012229801, -0.329097515, 1.442710462, -2.118377725, 1.0))
ERFINV_TAIL = ((1.641345311, 3.429567803, -1.624906493, -1.970840454), (1.637067800, 3.543889200, 1.0))


@lower("aten::erfinv")
def aten_erfinv(b, self):
    """erfinv(Tensor self) -> Tensor"""
    y = _float(b, self)
    a = b.op("abs", y)
    z = b.op("mul", y, y)
    central = b.op("mul", y, _ratio(b, z, *ERFINV_CENTRAL))
    w = b.op("sqrt", b.op("neg", b.op("log", b.op("mul", b.op("sub", 1.0, a), 0.5))))
    tail = b.op("abs", _ratio(b, w, *ERFINV_TAIL))
    x = _where(b, b.op("le", a, 0.7), central, _where(b, b.op("lt", y, 0.0), b.op("neg", tail), tail))
    for _ in range(2):  # Newton steps on erf(x) = y
        slope = b.op("mul", b.op("exp", b.op("neg", b.op("mul", x, x))), literal(2 / math.sqrt(math.pi)))
        x = b.op("sub", x, b.op("div", b.op("sub", erf(b, x), y), slope))
    inf = _where(b, b.op("lt", y, 0.0), -math.inf, math.inf)
    return _cases(b, [(b.op("gt", a, 1.0), math.nan), (b.op("eq", a, 1.0), inf)], x)


NDTRI_CENTRAL = ((-5.99633501014107895267E1, 9.80010754185999661536E1, -5.66762857469070293439E1,
                  1.39312609387279679503E1, -1.23916583867381258016E0),
                 (1.0, 1.95448858338141759834E0, 4.67627912898881538453E0, 8.63602421390890590575E1,
                  -2.25462687854119370527E2, 2.00260212380060660359E2, -8.20372256168333339912E1,
                  1.59056225126211695515E1, -1.18331621121330003142E0))
NDTRI_TAIL = ((4.05544892305962419923E0, 3.15251094599893866154E1, 5.71628192246421288162E1,
               4.40805073893200834700E1, 1.46849561928858024014E1, 2.18663306850790267539E0,
               -1.40256079171354495875E-1, -3.50424626827848203418E-2, -8.57456785154685413611E-4),
              (1.0, 1.57799883256466749731E1, 4.53907635128879210584E1, 4.13172038254672030440E1,
               1.50425385692907503408E1, 2.50464946208309415979E0, -1.42182922854787788574E-1,
               -3.80806407691578277194E-2, -9.33259480895457427372E-4))
NDTRI_FAR_TAIL = ((3.23774891776946035970E0, 6.91522889068984211695E0, 3.93881025292474443415E0,
                   1.33303460815807542389E0, 2.01485389549179081538E-1, 1.23716634817820021358E-2,
                   3.01581553508235416007E-4, 2.65806974686737550832E-6, 6.23974539184983293730E-9),
                  (1.0, 6.02427039364742014255E0, 3.67983563856160859403E0, 1.37702099489081330271E0,
                   2.16236993594496635890E-1, 1.34204006088543189037E-2, 3.28014464682127739104E-4,
                   2.89247864745380683936E-6, 6.79019408009981274425E-9))
EXP_M2 = 0.13533528323661269189  # exp(-2)


@lower("aten::special_ndtri")
def aten_special_ndtri(b, self):
    """special_ndtri(Tensor self) -> Tensor"""
    p = _float(b, self)
    upper = b.op("gt", p, literal(1 - EXP_M2))
    y = _where(b, upper, b.op("sub", 1.0, p), p)
    c = b.op("sub", y, 0.5)
    c2 = b.op("mul", c, c)
    central = b.op("mul", b.op("add", c, b.op("mul", c, b.op("mul", c2, _ratio(b, c2, *NDTRI_CENTRAL)))),
                   literal(math.sqrt(2 * math.pi)))
    x = b.op("sqrt", b.op("mul", b.op("log", y), -2.0))
    z = b.op("recip", x)
    near, far = (b.op("mul", z, _ratio(b, z, *coeffs)) for coeffs in (NDTRI_TAIL, NDTRI_FAR_TAIL))
    tail = b.op("sub", b.op("sub", x, b.op("div", b.op("log", x), x)), _where(b, b.op("lt", x, 8.0), near, far))
    tail = _where(b, upper, tail, b.op("neg", tail))
    out = _where(b, b.op("gt", y, literal(EXP_M2)), central, tail)
    bad = b.op("or", b.op("lt", p, 0.0), b.op("gt", p, 1.0))
    return _cases(b, [(b.op("eq", p, 0.0), -math.inf), (b.op("eq", p, 1.0), math.inf), (bad, math.nan)], out)


# Chebyshev series (chbevl) of erfcx(4/y - 4) in 4y - 2 for y in [0, 1], i.e. x >= 0; fitted for this module
ERFCX_SERIES = (
    8.5018322178848961e-12, 2.4581184496916576e-10, 6.8582068243504224e-10, -6.8831081601982122e-09,
    -6.9278304162493475e-08, -1.4628356490455993e-07, 2.3178234999099246e-06, 3.0685431130991085e-05,
    0.00022469794218773185, 0.0012278515372606755, 0.0054490870664590076, 0.020367256576744864,
    0.065237524497348987, 0.18027256568771055, 0.42908644125580536, 0.59620358738731516)


def _erfcx(b, x):
    """exp(x^2) erfc(x): a Chebyshev series in 4/(4+|x|) up to 50, a continued fraction above,
    and erfcx(x) = 2 exp(x^2) - erfcx(-x) for negative x."""
    a = b.op("abs", x)
    series = _chbevl(b, b.op("sub", b.op("div", literal(16.0), b.op("add", a, 4.0)), 2.0), ERFCX_SERIES)
    a2 = b.op("mul", a, a)
    fraction = b.op("div", b.op("add", b.op("mul", a2, b.op("add", a2, 4.5)), 2.0),
                    b.op("mul", a, b.op("add", b.op("mul", a2, b.op("add", a2, 5.0)), 3.75)))
    positive = b.op("mul", _where(b, b.op("gt", a, 5e7), b.op("recip", a), fraction), literal(1 / math.sqrt(math.pi)))
    positive = _where(b, b.op("gt", a, 50.0), positive, series)
    negative = b.op("sub", b.op("mul", b.op("exp", a2), 2.0), positive)
    return _cases(b, [(_isnan(b, x), x), (b.op("lt", x, 0.0), negative)], positive)


@lower("aten::special_erfcx")
def aten_special_erfcx(b, self):
    """special_erfcx(Tensor self) -> Tensor"""
    return _erfcx(b, _float(b, self))


@lower("aten::special_log_ndtr")
def aten_special_log_ndtr(b, self):
    """special_log_ndtr(Tensor self) -> Tensor"""
    x = _float(b, self)
    t = b.op("mul", x, literal(math.sqrt(0.5)))
    scaled = _erfcx(b, b.op("neg", t))  # erfc(-t) = exp(-t^2) erfcx(-t)
    low = b.op("sub", b.op("log", b.op("mul", scaled, 0.5)), b.op("mul", t, t))
    high = _log1p(b, b.op("mul", _erfcx(b, t), b.op("mul", b.op("exp", b.op("neg", b.op("mul", t, t))), -0.5)))
    return _where(b, b.op("lt", x, -1.0), low, high)


# --- modified Bessel functions of the first kind ---------------------------------------------

# Chebyshev series of exp(-x) I0(x) on [0, 8] (in x/2 - 2) and of exp(-x) sqrt(x) I0(x) on [8, inf) (in 32/x - 2)
I0E_NEAR = (2.65982372468238665035E-9, -1.30002500998624804212E-8, 6.04699502254191894932E-8,
            -2.67079385394061173391E-7, 1.11738753912010371815E-6, -4.41673835845875056359E-6,
            1.64484480707288970893E-5, -5.75419501008210370398E-5, 1.88502885095841655729E-4,
            -5.76375574538582365885E-4, 1.63947561694133579842E-3, -4.32430999505057594430E-3,
            1.05464603945949983183E-2, -2.37374148058994688156E-2, 4.93052842396707084878E-2,
            -9.49010970480476444210E-2, 1.71620901522208775349E-1, -3.04682672343198398683E-1,
            6.76795274409476084995E-1)
I0E_FAR = (3.39623202570838634515E-9, 2.26666899049817806459E-8, 2.04891858946906374183E-7,
           2.89137052083475648297E-6, 6.88975834691682398426E-5, 3.36911647825569408990E-3,
           8.04490411014108831608E-1)
# the same for exp(-x) I1(x) / x on [0, 8] and exp(-x) sqrt(x) I1(x) on [8, inf)
I1E_NEAR = (9.38153738649577178388E-9, -4.44505912879632808065E-8, 2.00329475355213526229E-7,
            -8.56872026469545474066E-7, 3.47025130813767847674E-6, -1.32731636560394358279E-5,
            4.78156510755005422638E-5, -1.61760815825896745588E-4, 5.12285956168575772895E-4,
            -1.51357245063125314899E-3, 4.15642294431288815669E-3, -1.05640848946261981558E-2,
            2.47264490306265168283E-2, -5.29459812080949914269E-2, 1.02643658689847095384E-1,
            -1.76416518357834055153E-1, 2.52587186443633654823E-1)
I1E_FAR = (-3.83538038596423702205E-9, -2.63146884688951950684E-8, -2.51223623787020892529E-7,
           -3.88256480887769039346E-6, -1.10588938762623716291E-4, -9.76109749136146840777E-3,
           7.78576235018280120474E-1)


def _bessel_i(b, x, order: int, scaled: bool):
    """I0/I1 of x, times exp(-|x|) when `scaled`."""
    a = b.op("abs", x)
    near = _chbevl(b, b.op("sub", b.op("mul", a, 0.5), 2.0), I1E_NEAR if order else I0E_NEAR)
    if order:
        near = b.op("mul", near, a)
    far = b.op("div", _chbevl(b, b.op("sub", b.op("div", literal(32.0), a), 2.0), I1E_FAR if order else I0E_FAR),
               b.op("sqrt", a))
    out = _where(b, b.op("le", a, 8.0), near, far)
    if not scaled:
        out = b.op("mul", b.op("exp", a), out)
    return _where(b, b.op("lt", x, 0.0), b.op("neg", out), out) if order else out


@lower("aten::i0")
def aten_i0(b, self):
    """i0(Tensor self) -> Tensor"""
    return _bessel_i(b, _float(b, self), 0, scaled=False)


@lower("aten::special_i0e")
def aten_special_i0e(b, self):
    """special_i0e(Tensor self) -> Tensor"""
    return _bessel_i(b, _float(b, self), 0, scaled=True)


@lower("aten::special_i1")
def aten_special_i1(b, self):
    """special_i1(Tensor self) -> Tensor"""
    return _bessel_i(b, _float(b, self), 1, scaled=False)


@lower("aten::special_i1e")
def aten_special_i1e(b, self):
    """special_i1e(Tensor self) -> Tensor"""
    return _bessel_i(b, _float(b, self), 1, scaled=True)
